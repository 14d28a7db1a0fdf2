package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// projectAccounting: GPU-hours, used against idle, energy and quotas of
// projects, exact from the ledger (PostgreSQL), and what the projects hold
// now, live from Prometheus.
func projectAccounting() board {
	return board{
		description: "GPU-hours, busy and idle time, energy and Kueue quotas by project: exact figures from the ledger, and the projects' allocations live from Prometheus.",
		tags:        []string{"accounting"},
		time:        "30d",
		vars: []cog.Builder[dashboard.VariableModel]{
			prometheusVar(), ledgerDatasourceVar(), ledgerClusterVar(), ledgerProjectVar(),
		},
		rows: []row{
			{id: 1, title: "Ledger: the selected range", panels: []cog.Builder[dashboard.Panel]{
				rangeTotalStat(2, projectFilter, "allocated_milli_gpu_seconds", gpuHours, "GPU-hours allocated",
					"Weighted GPU-hours allocated to the selected projects in the hours starting within the range: exact, from the ledger (gpuledger report gives the same).",
					unitGPUHours),
				rangeTotalStat(3, projectFilter, "used_milli_gpu_seconds", gpuHours, "GPU-hours busy",
					"Σ activity × weight × time over the allocations: the GPU-hours of work actually done (sampled from the exporters' activity).",
					unitGPUHours),
				rangeTotalStat(4, projectFilter, "idle_milli_gpu_seconds", gpuHours, "GPU-hours idle",
					"Weighted GPU-hours of allocations whose activity was below the aggregator's idle threshold (5 % by default).",
					unitGPUHours),
				rangeTotalStat(5, projectFilter, "energy_millijoules", kWh, "Energy",
					"Energy of the GPUs the projects held, each allocation's share of its GPU's energy counter.",
					units.KiloWattHour),
				rangeTotalStat(6, projectFilter, "fpga_seconds", secondHours, "FPGA-hours",
					"Hours of FPGA cards held (FPGA cards are counted apart from GPUs).",
					unitFPGAHours),
				watermarkStat(7),
				projectRangeTable(),
			}},
			{id: 10, title: "Ledger: over time", panels: []cog.Builder[dashboard.Panel]{
				monthlyGPUHoursPanel(), dailyUseIdlePanel(), dailyEnergyPanel(), monthlyStatementTable(),
			}},
			{id: 20, title: "Ledger: Kueue quotas", panels: []cog.Builder[dashboard.Panel]{
				quotaUsageTable(),
			}},
			{id: 30, title: "Live (Prometheus)", panels: []cog.Builder[dashboard.Panel]{
				liveAllocatedByProjectPanel(), liveBusyIdleByProjectPanel(), livePowerByProjectPanel(),
				liveQuotaPanel(), livePendingByProjectPanel(),
			}},
		},
	}
}

// rangeTotalStat is the sum of one ledger column over the range and the
// rows filter selects, converted for display.
func rangeTotalStat(id uint32, filter, col, conv, title, description, unit string) cog.Builder[dashboard.Panel] {
	return ledgerStatPanel(id, title, description, unit).
		Decimals(1).NoValue("0").
		WithTarget(sqlTable(`SELECT coalesce(sum(` + col + `), 0)` + conv + ` AS value
FROM ` + ledgerRows(filter)))
}

func watermarkStat(id uint32) cog.Builder[dashboard.Panel] {
	return ledgerStatPanel(id, "Ledger complete up to",
		"The aggregator's watermark for the cluster: the end of the last window written. Hours after it are not in the ledger yet (an open allocation counts up to it).",
		units.DatetimeISO).
		WithTarget(sqlTable(`SELECT max(watermark_unix) * 1000 AS watermark
FROM watermarks WHERE ` + clusterFilter))
}

func projectRangeTable() cog.Builder[dashboard.Panel] {
	return ledgerTablePanel(8, "Projects over the range",
		"Each selected project's ledger totals over the hours starting within the range, corrections of closed months included: what gpuledger report --group-by project prints. Idle share = idle / allocated.").
		WithTarget(sqlTable(`SELECT project,
  sum(allocated_milli_gpu_seconds)`+gpuHours+` AS allocated_gpu_hours,
  sum(used_milli_gpu_seconds)`+gpuHours+` AS used_gpu_hours,
  sum(idle_milli_gpu_seconds)`+gpuHours+` AS idle_gpu_hours,
  sum(idle_milli_gpu_seconds)::numeric / nullif(sum(allocated_milli_gpu_seconds), 0) AS idle_share,
  sum(energy_millijoules)`+kWh+` AS energy_kwh,
  sum(fpga_seconds)`+secondHours+` AS fpga_hours,
  sum(device_seconds)`+secondHours+` AS device_hours
FROM `+ledgerRows(projectFilter)+`
GROUP BY project
ORDER BY allocated_gpu_hours DESC, project`)).
		OverrideByName("allocated_gpu_hours", column(unitGPUHours, "allocated")).
		OverrideByName("used_gpu_hours", column(unitGPUHours, "busy")).
		OverrideByName("idle_gpu_hours", column(unitGPUHours, "idle")).
		OverrideByName("idle_share", column(units.PercentUnit, "idle share")).
		OverrideByName("energy_kwh", column(units.KiloWattHour, "energy")).
		OverrideByName("fpga_hours", column(unitFPGAHours, "FPGA")).
		OverrideByName("device_hours", column(unitDeviceHours, "devices (unweighted)"))
}

// monthsOf selects monthly rows (ledger_monthly, ledger_adjustments) of the
// months the range touches.
const monthsOf = `month >= date_trunc('month', $__timeFrom()::timestamptz, 'UTC') AND month < $__timeTo()`

// daysOf selects daily rows of the days the range touches.
const daysOf = `day >= date_trunc('day', $__timeFrom()::timestamptz, 'UTC') AND day < $__timeTo()`

func monthlyGPUHoursPanel() cog.Builder[dashboard.Panel] {
	return ledgerTimeseriesPanel(11, "GPU-hours allocated by month",
		"Weighted GPU-hours of each project per calendar month (UTC) the range touches, whole months, adjustments journaled after a month was closed included.",
		unitGPUHours).
		WithTarget(sqlSeries(`SELECT month AS "time", project AS metric, sum(allocated_milli_gpu_seconds)` + gpuHours + ` AS gpu_hours
FROM (SELECT month, project, allocated_milli_gpu_seconds FROM ledger_monthly WHERE ` + projectFilter + ` AND ` + monthsOf + `
  UNION ALL
  SELECT month, project, allocated_milli_gpu_seconds FROM ledger_adjustments WHERE ` + projectFilter + ` AND ` + monthsOf + `) AS r
GROUP BY 1, 2
ORDER BY 1, 2`))
}

func dailyUseIdlePanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(12, "Allocated, busy and idle GPU-hours by day",
		"The selected projects' GPU-hours per UTC day: allocated (exact, from allocation starts and ends), busy (activity × weight) and idle (allocations whose activity was below the threshold). Busy and idle are sampled from the exporters' activity every scrape.",
		unitGPUHours).
		Datasource(ledgerDS).
		ShowPoints(common.VisibilityModeAlways).Min(0).
		WithTarget(sqlSeries(`SELECT day AS "time",
  sum(allocated_milli_gpu_seconds)` + gpuHours + ` AS allocated,
  sum(used_milli_gpu_seconds)` + gpuHours + ` AS busy,
  sum(idle_milli_gpu_seconds)` + gpuHours + ` AS idle
FROM (SELECT day, allocated_milli_gpu_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds
  FROM ledger_daily WHERE ` + projectFilter + ` AND ` + daysOf + `
  UNION ALL
  SELECT date_trunc('day', hour, 'UTC'), allocated_milli_gpu_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds
  FROM ledger_adjustments WHERE ` + projectFilter + ` AND hour >= date_trunc('day', $__timeFrom()::timestamptz, 'UTC') AND hour < $__timeTo()) AS r
GROUP BY 1
ORDER BY 1`))
}

func dailyEnergyPanel() cog.Builder[dashboard.Panel] {
	return ledgerTimeseriesPanel(13, "Energy by project and day",
		"Energy of the GPUs each project held, per UTC day.",
		units.KiloWattHour).
		Span(fullWidth).
		WithTarget(sqlSeries(`SELECT day AS "time", project AS metric, sum(energy_millijoules)` + kWh + ` AS energy_kwh
FROM (SELECT day, project, energy_millijoules FROM ledger_daily WHERE ` + projectFilter + ` AND ` + daysOf + `
  UNION ALL
  SELECT date_trunc('day', hour, 'UTC'), project, energy_millijoules
  FROM ledger_adjustments WHERE ` + projectFilter + ` AND hour >= date_trunc('day', $__timeFrom()::timestamptz, 'UTC') AND hour < $__timeTo()) AS r
GROUP BY 1, 2
ORDER BY 1, 2`))
}

func monthlyStatementTable() cog.Builder[dashboard.Panel] {
	return ledgerTablePanel(14, "Monthly statement",
		"One row per month and project: the figures a funding report needs. Status closed: the month is immutable (gpuledger ledger close), and the figures include the corrections journaled since; open: the month can still change.").
		WithTarget(sqlTable(`SELECT r.month, r.project,
  CASE WHEN EXISTS (SELECT 1 FROM closed_months c WHERE c.cluster = r.cluster AND c.month = r.month)
    THEN 'closed' ELSE 'open' END AS status,
  sum(allocated_milli_gpu_seconds)`+gpuHours+` AS allocated_gpu_hours,
  sum(used_milli_gpu_seconds)`+gpuHours+` AS used_gpu_hours,
  sum(idle_milli_gpu_seconds)`+gpuHours+` AS idle_gpu_hours,
  sum(energy_millijoules)`+kWh+` AS energy_kwh,
  sum(fpga_seconds)`+secondHours+` AS fpga_hours
FROM (SELECT cluster, month, project, allocated_milli_gpu_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds,
    energy_millijoules, fpga_seconds
  FROM ledger_monthly WHERE `+projectFilter+` AND `+monthsOf+`
  UNION ALL
  SELECT cluster, month, project, allocated_milli_gpu_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds,
    energy_millijoules, fpga_seconds
  FROM ledger_adjustments WHERE `+projectFilter+` AND `+monthsOf+`) AS r
GROUP BY r.cluster, r.month, r.project
ORDER BY r.month DESC, r.project`)).
		OverrideByName("month", column("time:YYYY-MM", "")).
		OverrideByName("allocated_gpu_hours", column(unitGPUHours, "allocated")).
		OverrideByName("used_gpu_hours", column(unitGPUHours, "busy")).
		OverrideByName("idle_gpu_hours", column(unitGPUHours, "idle")).
		OverrideByName("energy_kwh", column(units.KiloWattHour, "energy")).
		OverrideByName("fpga_hours", column(unitFPGAHours, "FPGA"))
}

// quotaClassMatch joins a quota's resource name to the ledger classes (and
// MIG profile) that count against it, as the accounting API does
// (ledger.QuotaUsage): nvidia.com/gpu counts whole GPUs, local and
// offloaded; nvidia.com/mig-<profile> the slices of that profile;
// nvidia.com/gpu.shared shared GPUs; an amd.com or xilinx.com resource
// (but amd.com/gpu) every FPGA.
const quotaClassMatch = `((q.resource = 'nvidia.com/gpu' AND u.class IN ('gpu', 'offload'))
    OR (q.resource = 'nvidia.com/gpu.shared' AND u.class = 'shared')
    OR (q.resource LIKE 'nvidia.com/mig-_%' AND u.class = 'mig' AND u.profile = substr(q.resource, 16))
    OR ((q.resource LIKE 'amd.com/_%' OR q.resource LIKE 'xilinx.com/_%') AND q.resource <> 'amd.com/gpu' AND u.class = 'fpga'))`

func quotaUsageTable() cog.Builder[dashboard.Panel] {
	return ledgerTablePanel(21, "Quota against usage over the range",
		"For each Kueue ClusterQueue of the selected projects and each resource of its nominal quota: the quota in force at the end of the range, the quota over the range in device-hours (Σ nominal × time in force), the device-hours the project held of that resource (whole GPUs local and offloaded, MIG slices of the profile, shared GPUs, FPGA cards), and their ratio. Above 100 %, the project borrowed from its cohort.").
		WithTarget(sqlTable(`WITH q0 AS (
  SELECT cluster, queue, resource, project, nominal_milli, valid_from,
    lead(valid_from) OVER (PARTITION BY cluster, queue, resource ORDER BY valid_from) AS valid_to
  FROM queue_quotas WHERE `+projectFilter+`
), q AS (
  SELECT cluster, queue, resource, project,
    (array_agg(nominal_milli ORDER BY valid_from DESC))[1] / 1000.0 AS nominal,
    sum(nominal_milli * extract(epoch FROM least(coalesce(valid_to, $__timeTo()), $__timeTo()) - greatest(valid_from, $__timeFrom()))) / 3600000.0 AS quota_device_hours
  FROM q0 WHERE valid_from < $__timeTo() AND coalesce(valid_to, 'infinity') > $__timeFrom()
  GROUP BY cluster, queue, resource, project
), u AS (
  SELECT cluster, project, class, profile, sum(device_seconds + fpga_seconds) AS device_seconds
  FROM `+ledgerRows(projectFilter)+`
  GROUP BY cluster, project, class, profile
)
SELECT q.queue, q.resource, q.project, q.nominal AS nominal_quota, q.quota_device_hours,
  coalesce(sum(u.device_seconds), 0)`+secondHours+` AS used_device_hours,
  coalesce(sum(u.device_seconds), 0)`+secondHours+` / nullif(q.quota_device_hours, 0) AS quota_used
FROM q LEFT JOIN u ON u.cluster = q.cluster AND u.project = q.project AND `+quotaClassMatch+`
GROUP BY q.queue, q.resource, q.project, q.nominal, q.quota_device_hours
ORDER BY q.queue, q.resource`)).
		OverrideByName("nominal_quota", column(unitDevices, "nominal quota now")).
		OverrideByName("quota_device_hours", column(unitDeviceHours, "quota over the range")).
		OverrideByName("used_device_hours", column(unitDeviceHours, "held")).
		OverrideByName("quota_used", column(units.PercentUnit, "share of quota"))
}

func liveAllocatedByProjectPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(31, "GPUs allocated now",
		"Weighted GPUs the selected projects hold, offloaded GPUs included, live from the exporters (the ledger lags by the aggregator's window).",
		unitGPUs)).
		Min(0).
		WithTarget(promQuery(`sum by (project) (`+held("gpuledger_allocation_weight_ratio", classAnyGPU, `project=~"$project"`)+`)`, "{{project}}"))
}

func liveBusyIdleByProjectPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(32, "Busy and idle GPUs by project",
		"Per project: busy = Σ activity × weight of its allocations; idle = the weight of its allocations whose activity is below 5 %.",
		unitGPUs).
		Min(0).
		WithTarget(promQuery(`sum by (project) (`+sel("gpuledger_allocation_activity_ratio", classAnyGPU, `project=~"$project"`)+` * `+sel("gpuledger_allocation_weight_ratio", classAnyGPU, `project=~"$project"`)+`)`, "{{project}} busy")).
		WithTarget(promQuery(`sum by (project) (`+sel("gpuledger_allocation_weight_ratio", classAnyGPU, `project=~"$project"`)+` and (`+sel("gpuledger_allocation_activity_ratio", classAnyGPU, `project=~"$project"`)+` < `+idleBelow+`))`, "{{project}} idle"))
}

// weightedPower is the power of the GPUs the allocations selected by
// matchers hold, each allocation taking its weight's share of its GPU's
// board power, summed by the given labels.
func weightedPower(by string, matchers ...string) string {
	return `sum by (` + by + `) (
  label_replace(` + held("gpuledger_allocation_weight_ratio", append([]string{classLocalGPU}, matchers...)...) + `, "uuid", "$1", "gpu_uuid", "(.+)")
  * on(cluster, node, uuid) group_left()
  ` + sel("gpuledger_gpu_power_watts") + `
)`
}

func livePowerByProjectPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(33, "GPU power by project",
		"Board power of the local GPUs each project holds, each allocation taking its weight's share (a 3g.40gb slice of an A100 3/7 of the board). Its integral is the energy the ledger books.",
		units.Watt)).
		Min(0).
		WithTarget(promQuery(weightedPower("project", `project=~"$project"`), "{{project}}"))
}

func liveQuotaPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(34, "Devices held against Kueue quota",
		"Devices the selected projects hold through each Kueue ClusterQueue, by resource, against the queue's nominal quota (all flavors). Quotas come from the exporter in cluster mode; a resource above its quota borrows from the cohort and can be preempted.",
		unitDevices).
		Min(0).
		WithTarget(promQuery(`sum by (queue, resource) (`+held("gpuledger_allocation_devices", `queue!=""`, `project=~"$project"`)+`)`, "{{queue}} {{resource}} held")).
		WithTarget(promQuery(`sum by (queue, resource) (label_replace(`+sel("gpuledger_kueue_clusterqueue_nominal_quota")+`, "queue", "$1", "cluster_queue", "(.+)"))
  and on(queue, resource)
  sum by (queue, resource) (`+sel("gpuledger_allocation_devices", `queue!=""`, `project=~"$project"`)+`)`, "{{queue}} {{resource}} quota"))
}

func livePendingByProjectPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(35, "Pending requests by project",
		"Accelerators requested by the projects' pods that have not started yet, by resource. Served by the exporter in cluster mode.",
		unitDevices)).
		Span(halfWidth).Min(0).
		WithTarget(promQuery(`sum by (project, resource) (`+sel("gpuledger_pending_pod_requests", `project=~"$project"`)+`)`, "{{project}} {{resource}}"))
}
