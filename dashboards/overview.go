package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// clusterOverview: what the cluster has, what is allocated, what the
// allocations do, MIG slices by profile, FPGAs, offloading and demand. Live
// from Prometheus.
func clusterOverview() board {
	return board{
		description: "Capacity and allocation of the cluster's GPUs, MIG slices and FPGAs, live from the gpuledger exporters.",
		tags:        []string{"overview"},
		time:        "24h",
		vars:        []cog.Builder[dashboard.VariableModel]{prometheusVar(), promClusterVar()},
		rows: []row{
			{id: 1, title: "Now", panels: []cog.Builder[dashboard.Panel]{
				gpusInstalledStat(), gpusAllocatedStat(), allocatedShareStat(), gpusUsedStat(), idleAllocatedStat(), offloadedStat(),
			}},
			{id: 10, title: "Allocation over time", panels: []cog.Builder[dashboard.Panel]{
				capacityAllocationPanel(), usedIdlePanel(), allocatedByProjectPanel(), allocatedByModelPanel(),
				allocatedShareByModelPanel(), offloadedBySitePanel(),
			}},
			{id: 20, title: "MIG", panels: []cog.Builder[dashboard.Panel]{
				migOccupancyPanel(), migAllocatedByProfilePanel(), migInstancesTable(),
			}},
			{id: 30, title: "FPGAs", panels: []cog.Builder[dashboard.Panel]{
				fpgaCardsStat(), fpgaAllocatedStat(), fpgaAllocatedByModelPanel(),
			}},
			{id: 40, title: "Demand", panels: []cog.Builder[dashboard.Panel]{
				pendingByResourcePanel(),
			}},
		},
	}
}

func gpusInstalledStat() cog.Builder[dashboard.Panel] {
	return statPanel(2, "GPUs installed",
		"Physical GPUs the node exporters report (gpuledger_gpu_info), MIG-enabled ones included. GPUs of remote InterLink sites are not counted.",
		units.Short).
		NoValue("0").
		WithTarget(promInstant(`count(`+sel("gpuledger_gpu_info")+`)`, "GPUs"))
}

func gpusAllocatedStat() cog.Builder[dashboard.Panel] {
	return statPanel(3, "GPUs allocated",
		"Local GPUs held by pods now, weighted: a whole GPU counts 1, a MIG slice its weight (e.g. 0.143 for an A100 1g.10gb), a time-sliced share its fraction. Ended allocations the exporters still show are left out.",
		unitGPUs).
		Decimals(2).NoValue("0").
		WithTarget(promInstant(`sum(`+held("gpuledger_allocation_weight_ratio", classLocalGPU)+`)`, "allocated"))
}

func allocatedShareStat() cog.Builder[dashboard.Panel] {
	return statPanel(4, "Allocated share of capacity",
		"Weighted local GPUs allocated over physical GPUs installed. Below 100 % means GPUs (or MIG slices) nobody holds.",
		units.PercentUnit).
		Decimals(1).Min(0).Max(1).
		WithTarget(promInstant(`sum(`+held("gpuledger_allocation_weight_ratio", classLocalGPU)+`) / count(`+sel("gpuledger_gpu_info")+`)`, "allocated share"))
}

func gpusUsedStat() cog.Builder[dashboard.Panel] {
	return statPanel(5, "GPUs busy",
		"Σ activity × weight over the local allocations: how many GPUs' worth of work the pods that hold GPUs are doing now.",
		unitGPUs).
		Decimals(2).NoValue("0").
		WithTarget(promInstant(`sum(`+sel("gpuledger_allocation_activity_ratio", classLocalGPU)+` * `+sel("gpuledger_allocation_weight_ratio", classLocalGPU)+`)`, "busy"))
}

func idleAllocatedStat() cog.Builder[dashboard.Panel] {
	return statPanel(6, "Idle but allocated",
		"Weighted GPUs held by pods whose activity is below 5 % now: booked to a project, doing nothing, unavailable to others. The ledger books the same time as idle-allocated; the GPULedgerGPUAllocatedIdle alert fires after an hour of it.",
		unitGPUs).
		Decimals(2).NoValue("0").
		Thresholds(warnAbove(0.5, 2)).
		WithTarget(promInstant(idleWeight(classLocalGPU), "idle"))
}

// idleWeight is the summed weight of the active allocations whose activity
// is below the idle threshold.
func idleWeight(matchers ...string) string {
	return `sum(` + sel("gpuledger_allocation_weight_ratio", matchers...) + ` and (` +
		sel("gpuledger_allocation_activity_ratio", matchers...) + ` < ` + idleBelow + `))`
}

func offloadedStat() cog.Builder[dashboard.Panel] {
	return statPanel(7, "GPUs offloaded",
		"GPUs requested by pods running on InterLink virtual nodes (remote sites), counted as requested: no local device backs them.",
		unitGPUs).
		Decimals(0).NoValue("0").
		WithTarget(promInstant(`sum(`+held("gpuledger_allocation_weight_ratio", `class="offload"`)+`)`, "offloaded"))
}

func capacityAllocationPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(11, "GPU capacity and allocation",
		"Physical GPUs installed (line) against the weighted GPUs allocated, stacked by class: whole GPUs, MIG slices, time-sliced shares.",
		unitGPUs)).
		Min(0).
		OverrideByName("capacity", []dashboard.DynamicConfigValue{
			{Id: "custom.stacking", Value: map[string]any{"mode": "none"}},
			{Id: "custom.fillOpacity", Value: 0},
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
		}).
		WithTarget(promQuery(`count(`+sel("gpuledger_gpu_info")+`)`, "capacity")).
		WithTarget(promQuery(`sum by (class) (`+held("gpuledger_allocation_weight_ratio", classLocalGPU)+`)`, "{{class}}"))
}

func usedIdlePanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(12, "Allocated, busy and idle GPUs",
		"Weighted local GPUs allocated; busy = Σ activity × weight; idle = the weight of allocations whose activity is below 5 %. The gap between allocated and busy is paid-for capacity doing nothing.",
		unitGPUs).
		Min(0).
		WithTarget(promQuery(`sum(`+held("gpuledger_allocation_weight_ratio", classLocalGPU)+`)`, "allocated")).
		WithTarget(promQuery(`sum(`+sel("gpuledger_allocation_activity_ratio", classLocalGPU)+` * `+sel("gpuledger_allocation_weight_ratio", classLocalGPU)+`)`, "busy")).
		WithTarget(promQuery(idleWeight(classLocalGPU), "idle"))
}

func allocatedByProjectPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(13, "GPUs allocated by project",
		"Weighted GPUs held by each project, offloaded GPUs included. The ledger's project accounting dashboard has the exact GPU-hours.",
		unitGPUs)).
		Min(0).
		WithTarget(promQuery(`sum by (project) (`+held("gpuledger_allocation_weight_ratio", classAnyGPU)+`)`, "{{project}}"))
}

func allocatedByModelPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(14, "GPUs allocated by model",
		"Weighted local GPUs held, by GPU model (a MIG slice counts under its parent's model).",
		unitGPUs)).
		Min(0).
		WithTarget(promQuery(`sum by (model) (`+held("gpuledger_allocation_weight_ratio", classLocalGPU)+`)`, "{{model}}"))
}

func allocatedShareByModelPanel() cog.Builder[dashboard.Panel] {
	return bargaugePanel(15, "Allocated share by model",
		"For each GPU model, the weighted GPUs allocated over the GPUs installed, now. A model at 100 % has nothing left to give.",
		units.PercentUnit).
		Min(0).Max(1).
		Thresholds(warnAbove(0.8, 0.95)).
		WithTarget(promInstant(`sum by (model) (`+held("gpuledger_allocation_weight_ratio", classLocalGPU)+`) / count by (model) (`+sel("gpuledger_gpu_info")+`)`, "{{model}}"))
}

func offloadedBySitePanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(16, "GPUs offloaded by site",
		"GPUs requested by pods on InterLink virtual nodes, by remote site.",
		unitGPUs)).
		Min(0).
		WithTarget(promQuery(`sum by (site) (`+held("gpuledger_allocation_weight_ratio", `class="offload"`)+`)`, "{{site}}"))
}

func migOccupancyPanel() cog.Builder[dashboard.Panel] {
	allocated := `count by (profile) (` + held("gpuledger_allocation_devices", `class="mig"`) + `)`
	instances := `count by (profile) (` + sel("gpuledger_mig_instance_info") + `)`
	return bargaugePanel(21, "MIG occupancy by profile",
		"For each MIG profile, the share of its instances that a pod holds now. A profile with free instances and a queue of pending pods asking for another profile is a case for a different MIG layout.",
		units.PercentUnit).
		Min(0).Max(1).
		Thresholds(warnAbove(0.8, 0.95)).
		WithTarget(promInstant(`(`+allocated+` or `+instances+` * 0) / `+instances, "{{profile}}"))
}

func migAllocatedByProfilePanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(22, "MIG slices allocated by profile",
		"MIG instances held by pods, by profile (raw count, not weighted).",
		unitDevices)).
		Min(0).
		WithTarget(promQuery(`count by (profile) (`+held("gpuledger_allocation_devices", `class="mig"`)+`)`, "{{profile}}"))
}

func migInstancesTable() cog.Builder[dashboard.Panel] {
	return tablePanel(23, "MIG instances by GPU model and profile",
		"MIG instances the exporters report, by parent GPU model and profile, with how many a pod holds now and the accounting weight of one instance.").
		WithTarget(promTable(`count by (model, profile) (`+sel("gpuledger_mig_instance_info")+` * on(cluster, node, uuid) group_left(model) `+sel("gpuledger_gpu_info")+`)`).RefId("instances")).
		WithTarget(promTable(`count by (model, profile) (`+held("gpuledger_allocation_devices", `class="mig"`)+`)`).RefId("held")).
		WithTarget(promTable(`max by (model, profile) (`+sel("gpuledger_mig_instance_weight_ratio")+` * on(cluster, node, uuid) group_left(model) `+sel("gpuledger_gpu_info")+`)`).RefId("weight")).
		WithTransformation(mergeTables()).
		WithTransformation(hideColumns(map[string]string{
			"Value #instances": "instances", "Value #held": "held now", "Value #weight": "weight",
		}, "Time")).
		OverrideByName("weight", column(unitGPUs, "")).
		OverrideByName("instances", column(unitDevices, "")).
		OverrideByName("held now", column(unitDevices, ""))
}

func fpgaCardsStat() cog.Builder[dashboard.Panel] {
	return statPanel(31, "FPGA cards",
		"FPGA cards the node exporters report (gpuledger_fpga_info).",
		unitDevices).
		NoValue("0").
		WithTarget(promInstant(`count(`+sel("gpuledger_fpga_info")+`)`, "cards"))
}

func fpgaAllocatedStat() cog.Builder[dashboard.Panel] {
	return statPanel(32, "FPGA cards allocated",
		"FPGA cards a pod holds now. The ledger counts them as FPGA-hours, apart from GPU-hours.",
		unitDevices).
		NoValue("0").
		WithTarget(promInstant(`sum(`+held("gpuledger_allocation_devices", `class="fpga"`)+`)`, "allocated"))
}

func fpgaAllocatedByModelPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(33, "FPGA cards allocated by model",
		"FPGA cards held by pods over time, by card model, against the cards installed.",
		unitDevices)).
		Span(16).Min(0).
		OverrideByName("installed", []dashboard.DynamicConfigValue{
			{Id: "custom.stacking", Value: map[string]any{"mode": "none"}},
			{Id: "custom.fillOpacity", Value: 0},
		}).
		WithTarget(promQuery(`count(`+sel("gpuledger_fpga_info")+`)`, "installed")).
		WithTarget(promQuery(`sum by (model) (`+held("gpuledger_allocation_devices", `class="fpga"`)+`)`, "{{model}}"))
}

func pendingByResourcePanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(41, "Pending accelerator requests",
		"Accelerators requested by pods that exist but have not started (unscheduled, waiting for a device, pulling their image), by resource name. Served by the exporter in cluster mode.",
		unitDevices)).
		Span(fullWidth).Min(0).
		WithTarget(promQuery(`sum by (resource) (`+sel("gpuledger_pending_pod_requests")+`)`, "{{resource}}"))
}
