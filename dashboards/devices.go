package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// deviceHealth: GPU telemetry from NVML (or the simulator), XID and ECC
// errors, MIG instances and DCGM's profiling activity, per node.
func deviceHealth() board {
	return board{
		description: "Temperature, power, clocks, utilization, memory, XID and ECC errors of the GPUs, their MIG instances, and DCGM profiling activity.",
		tags:        []string{"hardware"},
		time:        "6h",
		vars: []cog.Builder[dashboard.VariableModel]{
			prometheusVar(), promClusterVar(), nodeVar("gpuledger_gpu_info"),
		},
		rows: []row{
			{id: 1, title: "GPUs", panels: []cog.Builder[dashboard.Panel]{
				gpuInventoryTable(), gpuTemperaturePanel(), gpuPowerPanel(), gpuSMClockPanel(), gpuMemoryClockPanel(),
				gpuUtilizationPanel(), gpuActivityPanel(), gpuMemoryUsedPanel(), gpuEnergyPanel(),
			}},
			{id: 20, title: "Errors", panels: []cog.Builder[dashboard.Panel]{
				xidErrorsPanel(), xidErrorsTable(), eccErrorsPanel(), nvmlErrorsPanel(),
			}},
			{id: 30, title: "MIG instances", panels: []cog.Builder[dashboard.Panel]{
				migActivityPanel(), migMemoryPanel(),
			}},
			{id: 40, title: "DCGM profiling", panels: []cog.Builder[dashboard.Panel]{
				dcgmPanel(41, "gpuledger_dcgm_graphics_activity_ratio", "Graphics engine active",
					"Fraction of time the graphics or compute engine was active (DCGM_FI_PROF_GR_ENGINE_ACTIVE), per GPU and per MIG instance."),
				dcgmPanel(42, "gpuledger_dcgm_sm_activity_ratio", "SM active",
					"Fraction of time at least one warp was active on an SM, averaged over the SMs (DCGM_FI_PROF_SM_ACTIVE): low while the engine is active means kernels too small to fill the GPU."),
				dcgmPanel(43, "gpuledger_dcgm_tensor_activity_ratio", "Tensor pipe active",
					"Fraction of cycles the tensor pipe was active (DCGM_FI_PROF_PIPE_TENSOR_ACTIVE): whether training uses the tensor cores."),
				dcgmPanel(44, "gpuledger_dcgm_dram_activity_ratio", "DRAM active",
					"Fraction of cycles the memory interface was busy (DCGM_FI_PROF_DRAM_ACTIVE): high with a low SM activity means memory-bound work."),
			}},
		},
	}
}

// gpuMatch selects the GPUs of the selected nodes.
const gpuMatch = `node=~"$node"`

// gpuLegend names a GPU in legends.
const gpuLegend = "{{node}} GPU {{gpu}}"

func gpuInventoryTable() cog.Builder[dashboard.Panel] {
	return tablePanel(2, "GPUs",
		"The physical GPUs of the selected nodes: index, UUID, model and whether MIG is enabled.").
		Height(6).
		WithTarget(promTable(`max by (node, gpu, uuid, model, mig_mode) (` + sel("gpuledger_gpu_info", gpuMatch) + `)`)).
		WithTransformation(hideColumns(nil, "Time", "Value"))
}

func gpuTemperaturePanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(3, "Temperature",
		"Core temperature of each GPU. The GPULedgerGPUTemperatureHigh alert fires above 85 °C.",
		units.Celsius).
		Thresholds(warnAbove(80, 85)).ThresholdsStyle(thresholdLines()).
		WithTarget(promQuery(sel("gpuledger_gpu_temperature_celsius", gpuMatch), gpuLegend))
}

func gpuPowerPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(4, "Power draw",
		"Board power draw of each GPU.",
		units.Watt).
		Min(0).
		WithTarget(promQuery(sel("gpuledger_gpu_power_watts", gpuMatch), gpuLegend))
}

func gpuSMClockPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(5, "SM clock",
		"Streaming multiprocessor clock of each GPU: the idle clock when nothing runs, the boost clock under load; a busy GPU below its boost clock is throttling (temperature or power).",
		units.Hertz).
		WithTarget(promQuery(sel("gpuledger_gpu_sm_clock_hertz", gpuMatch), gpuLegend))
}

func gpuMemoryClockPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(6, "Memory clock",
		"Memory clock of each GPU (NVML source).",
		units.Hertz).
		WithTarget(promQuery(sel("gpuledger_gpu_memory_clock_hertz", gpuMatch), gpuLegend))
}

func gpuUtilizationPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(7, "Utilization",
		"Fraction of time each GPU was busy (NVML). Absent on MIG-enabled GPUs: see the MIG instance activity and the GPM activity.",
		units.PercentUnit).
		Min(0).Max(1).
		WithTarget(promQuery(sel("gpuledger_gpu_utilization_ratio", gpuMatch), gpuLegend))
}

func gpuActivityPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(8, "Graphics activity (GPM)",
		"Graphics-engine activity of the whole GPU measured by GPU performance monitoring: Hopper and newer only, MIG-enabled GPUs included (NVML source).",
		units.PercentUnit).
		Min(0).Max(1).
		WithTarget(promQuery(sel("gpuledger_gpu_activity_ratio", gpuMatch), gpuLegend))
}

func gpuMemoryUsedPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(9, "Frame buffer used",
		"Frame buffer in use over the GPU's total, MIG instances included.",
		units.PercentUnit).
		Min(0).Max(1).
		Thresholds(warnAbove(0.9, 0.97)).
		WithTarget(promQuery(sel("gpuledger_gpu_memory_used_bytes", gpuMatch)+` / `+sel("gpuledger_gpu_memory_total_bytes", gpuMatch), gpuLegend))
}

func gpuEnergyPanel() cog.Builder[dashboard.Panel] {
	return bargaugePanel(10, "Energy over the range",
		"Energy each GPU consumed over the time range, from its energy counter (the counter the ledger's energy figures come from), whoever held it.",
		units.KiloWattHour).
		Min(0).
		WithTarget(promInstant(`sum by (node, gpu) (increase(`+sel("gpuledger_gpu_energy_joules_total", gpuMatch)+`[$__range])) / 3600000`, gpuLegend))
}

func xidErrorsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(21, "XID errors",
		"Critical XID errors per GPU and code, per scrape interval (NVML event set). XIDs 48, 63, 64, 74, 79, 92, 94, 95, 119 and 120 fire GPULedgerGPUXidCritical.",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum by (node, gpu, xid) (increase(`+sel("gpuledger_gpu_xid_errors_total", gpuMatch)+`[$__rate_interval]))`, "{{node}} GPU {{gpu}} XID {{xid}}"))
}

func xidErrorsTable() cog.Builder[dashboard.Panel] {
	return tablePanel(22, "XID errors in the range",
		"XID errors per GPU and code over the whole time range.").
		Span(halfWidth).
		WithTarget(promTable(`sum by (node, gpu, uuid, xid) (increase(`+sel("gpuledger_gpu_xid_errors_total", gpuMatch)+`[$__range]))`)).
		WithTransformation(hideColumns(map[string]string{"Value": "errors"}, "Time")).
		OverrideByName("errors", column(units.Short, ""))
}

func eccErrorsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(23, "ECC errors",
		"Memory ECC errors per GPU and type, per scrape interval. Uncorrected errors fire GPULedgerGPUECCUncorrected: the GPU needs a reset and its jobs may have failed.",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum by (node, gpu, type) (increase(`+sel("gpuledger_gpu_ecc_errors_total", gpuMatch)+`[$__rate_interval]))`, "{{node}} GPU {{gpu}} {{type}}"))
}

func nvmlErrorsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(24, "NVML call errors",
		"NVML calls that failed (unsupported features not counted), per node and function, per scrape interval. A steady rate means a GPU the driver lost or a broken library.",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum by (node, call) (increase(`+sel("gpuledger_gpu_nvml_errors_total", gpuMatch)+`[$__rate_interval]))`, "{{node}} {{call}}"))
}

// migLegend names a MIG instance in legends.
const migLegend = "{{node}} GPU {{gpu}} {{profile}} (GI {{gpu_instance_id}})"

func migActivityPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(31, "MIG instance activity",
		"Graphics-engine activity of each MIG instance (0–1): from the simulator or GPM (Hopper and newer; absent on A100 and A30, where the DCGM profiling fields give it).",
		units.PercentUnit).
		Min(0).Max(1).
		WithTarget(promQuery(sel("gpuledger_mig_instance_activity_ratio", gpuMatch), migLegend))
}

func migMemoryPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(32, "MIG instance memory used",
		"Memory in use on each MIG instance over the instance's memory.",
		units.PercentUnit).
		Min(0).Max(1).
		WithTarget(promQuery(sel("gpuledger_mig_instance_memory_used_bytes", gpuMatch)+` / `+sel("gpuledger_mig_instance_memory_total_bytes", gpuMatch), migLegend))
}

// dcgmPanel draws one of DCGM's profiling ratios, per GPU and MIG instance.
func dcgmPanel(id uint32, metric, title, description string) cog.Builder[dashboard.Panel] {
	return timeseriesPanel(id, title, description+" Served by the dcgm source from the node's dcgm-exporter.",
		units.PercentUnit).
		Min(0).Max(1).
		WithTarget(promQuery(sel(metric, gpuMatch), "{{node}} GPU {{gpu}} {{profile}} {{gpu_instance_id}}"))
}
