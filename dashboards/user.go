package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// userView: what users used (ledger) and hold now (Prometheus), down to
// their pods.
func userView() board {
	return board{
		description: "A user's GPU-hours, busy and idle time, energy and pods from the ledger, and the allocations they hold now with their activity.",
		tags:        []string{"accounting"},
		time:        "7d",
		vars: []cog.Builder[dashboard.VariableModel]{
			prometheusVar(), ledgerDatasourceVar(), ledgerClusterVar(), ledgerProjectVar(), ledgerUserVar(),
		},
		rows: []row{
			{id: 1, title: "Ledger: the selected range", panels: []cog.Builder[dashboard.Panel]{
				rangeTotalStat(2, userFilter, "allocated_milli_gpu_seconds", gpuHours, "GPU-hours allocated",
					"Weighted GPU-hours allocated to the selected users (in the selected projects) in the hours starting within the range: exact, from the ledger.",
					unitGPUHours),
				rangeTotalStat(3, userFilter, "used_milli_gpu_seconds", gpuHours, "GPU-hours busy",
					"Σ activity × weight × time over the users' allocations: the GPU-hours of work done.",
					unitGPUHours),
				rangeTotalStat(4, userFilter, "idle_milli_gpu_seconds", gpuHours, "GPU-hours idle",
					"Weighted GPU-hours of the users' allocations whose activity was below the idle threshold: held, but doing nothing.",
					unitGPUHours),
				userIdleShareStat(),
				rangeTotalStat(6, userFilter, "energy_millijoules", kWh, "Energy",
					"Energy of the GPUs the users held, each allocation's share of its GPU's energy counter.",
					units.KiloWattHour),
				rangeTotalStat(7, userFilter, "fpga_seconds", secondHours, "FPGA-hours",
					"Hours of FPGA cards the users held.",
					unitFPGAHours),
				userBreakdownTable(),
			}},
			{id: 10, title: "Ledger: over time and pods", panels: []cog.Builder[dashboard.Panel]{
				userDailyPanel(), userIntervalsTable(),
			}},
			{id: 20, title: "Live (Prometheus)", panels: []cog.Builder[dashboard.Panel]{
				userHeldNowTable(), userGPUsHeldPanel(), userActivityPanel(), userIdleNowTable(),
			}},
		},
	}
}

func userIdleShareStat() cog.Builder[dashboard.Panel] {
	return ledgerStatPanel(5, "Idle share",
		"Idle GPU-hours over allocated GPU-hours of the selected users in the range. A high share means GPUs held for notebooks or jobs that wait.",
		units.PercentUnit).
		Decimals(1).Min(0).Max(1).
		Thresholds(warnAbove(0.25, 0.5)).
		WithTarget(sqlTable(`SELECT sum(idle_milli_gpu_seconds)::numeric / nullif(sum(allocated_milli_gpu_seconds), 0) AS idle_share
FROM ` + ledgerRows(userFilter)))
}

func userBreakdownTable() cog.Builder[dashboard.Panel] {
	return ledgerTablePanel(8, "By user, project and resource",
		"The ledger's totals over the range for each user, project, resource class, model, MIG profile and InterLink site: what gpuledger report --group-by user,project,resource,model,profile,site prints.").
		WithTarget(sqlTable(`SELECT user_name AS "user", project, class, model, profile, site,
  sum(allocated_milli_gpu_seconds)`+gpuHours+` AS allocated_gpu_hours,
  sum(used_milli_gpu_seconds)`+gpuHours+` AS used_gpu_hours,
  sum(idle_milli_gpu_seconds)`+gpuHours+` AS idle_gpu_hours,
  sum(energy_millijoules)`+kWh+` AS energy_kwh,
  sum(fpga_seconds)`+secondHours+` AS fpga_hours
FROM `+ledgerRows(userFilter)+`
GROUP BY user_name, project, class, model, profile, site
ORDER BY allocated_gpu_hours DESC, fpga_hours DESC, 1, 2, 3, 4, 5, 6`)).
		OverrideByName("allocated_gpu_hours", column(unitGPUHours, "allocated")).
		OverrideByName("used_gpu_hours", column(unitGPUHours, "busy")).
		OverrideByName("idle_gpu_hours", column(unitGPUHours, "idle")).
		OverrideByName("energy_kwh", column(units.KiloWattHour, "energy")).
		OverrideByName("fpga_hours", column(unitFPGAHours, "FPGA"))
}

func userDailyPanel() cog.Builder[dashboard.Panel] {
	return ledgerTimeseriesPanel(11, "GPU-hours allocated by user and day",
		"Weighted GPU-hours of each selected user per UTC day.",
		unitGPUHours).
		Span(fullWidth).
		WithTarget(sqlSeries(`SELECT day AS "time", user_name AS metric, sum(allocated_milli_gpu_seconds)` + gpuHours + ` AS gpu_hours
FROM (SELECT day, user_name, allocated_milli_gpu_seconds FROM ledger_daily WHERE ` + userFilter + ` AND ` + daysOf + `
  UNION ALL
  SELECT date_trunc('day', hour, 'UTC'), user_name, allocated_milli_gpu_seconds
  FROM ledger_adjustments WHERE ` + userFilter + ` AND hour >= date_trunc('day', $__timeFrom()::timestamptz, 'UTC') AND hour < $__timeTo()) AS r
GROUP BY 1, 2
ORDER BY 1, 2`))
}

func userIntervalsTable() cog.Builder[dashboard.Panel] {
	return ledgerTablePanel(12, "Allocations overlapping the range",
		"Every allocation of the selected users that overlaps the range, newest first (at most 1000): the pod, where it ran, its exact start and end (empty while running), its weight, and its GPU-hours and device-hours inside the range (an open allocation counts up to the ledger's watermark). FPGA cards have no GPU-hours.").
		Height(12).
		WithTarget(sqlTable(`SELECT to_timestamp(i.start_unix) AS start, to_timestamp(i.end_unix) AS "end",
  i.user_name AS "user", i.project, i.namespace, i.pod, i.node, i.class, i.model, i.profile, i.site,
  i.weight_milli / 1000.0 AS weight,
  CASE WHEN i.class = 'fpga' THEN 0 ELSE i.weight_milli END
    * greatest(0, least(coalesce(i.end_unix, w.watermark_unix), $__unixEpochTo()) - greatest(i.start_unix, $__unixEpochFrom()))`+gpuHours+` AS gpu_hours,
  i.devices * greatest(0, least(coalesce(i.end_unix, w.watermark_unix), $__unixEpochTo()) - greatest(i.start_unix, $__unixEpochFrom()))`+secondHours+` AS device_hours
FROM intervals i LEFT JOIN watermarks w ON w.cluster = i.cluster
WHERE i.cluster IN (${cluster:sqlstring}) AND i.project IN (${project:sqlstring}) AND i.user_name IN (${user:sqlstring})
  AND int8range(i.start_unix, i.end_unix) && int8range($__unixEpochFrom(), $__unixEpochTo())
ORDER BY i.start_unix DESC, i.pod
LIMIT 1000`)).
		OverrideByName("weight", column(unitGPUs, "")).
		OverrideByName("gpu_hours", column(unitGPUHours, "GPU-hours in range")).
		OverrideByName("device_hours", column(unitDeviceHours, "device-hours in range"))
}

// userMatchers select the allocation series of the selected users and
// projects.
var userMatchers = []string{`user=~"$user"`, `project=~"$project"`}

func userHeldNowTable() cog.Builder[dashboard.Panel] {
	return tablePanel(21, "Held now",
		"The devices the selected users' pods hold now, with their weight in GPUs (1 for a whole GPU or an FPGA card, the slice or share weight, the requested count on a virtual node).").
		WithTarget(promTable(`sum by (user, project, namespace, pod, node, class, model, profile, site) (`+
			held("gpuledger_allocation_weight_ratio", userMatchers...)+`)`)).
		WithTransformation(hideColumns(map[string]string{"Value": "weight"}, "Time")).
		OverrideByName("weight", column(unitGPUs, ""))
}

func userGPUsHeldPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(22, "GPUs held by user",
		"Weighted GPUs the selected users hold over time, offloaded GPUs included.",
		unitGPUs)).
		Min(0).
		WithTarget(promQuery(`sum by (user) (`+held("gpuledger_allocation_weight_ratio", append([]string{classAnyGPU}, userMatchers...)...)+`)`, "{{user}}"))
}

func userActivityPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(23, "Activity of the users' pods",
		"Activity (0–1) of each pod of the selected users on its share of the device, while the allocation is active. Flat near zero: the pod holds a GPU it does not use.",
		units.PercentUnit).
		Min(0).Max(1).
		Thresholds(warnBelow(0.05, 0.2)).
		ThresholdsStyle(thresholdLines()).
		WithTarget(promQuery(`max by (user, namespace, pod, class, profile) (`+sel("gpuledger_allocation_activity_ratio", userMatchers...)+`)`, "{{user}} {{namespace}}/{{pod}} {{class}} {{profile}}"))
}

func userIdleNowTable() cog.Builder[dashboard.Panel] {
	return tablePanel(24, "Idle allocations now",
		"Allocations of the selected users whose activity is below 5 % now, with their weight: candidates for stopping (the GPULedgerGPUAllocatedIdle alert fires after an hour).").
		WithTarget(promTable(`sum by (user, project, namespace, pod, node, class, model, profile) (`+
			sel("gpuledger_allocation_weight_ratio", userMatchers...)+` and (`+sel("gpuledger_allocation_activity_ratio", userMatchers...)+` < `+idleBelow+`))`)).
		WithTransformation(hideColumns(map[string]string{"Value": "weight"}, "Time")).
		OverrideByName("weight", column(unitGPUs, ""))
}
