package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// fpgas: AMD/Xilinx Alveo cards: identity, who holds them, sensors, rails,
// fans, compute-unit throughput and read errors.
func fpgas() board {
	return board{
		description: "AMD/Xilinx FPGA cards: shells and xclbins, who holds each card, temperatures, power, rails, fans, compute-unit executions and read errors.",
		tags:        []string{"hardware"},
		time:        "6h",
		vars: []cog.Builder[dashboard.VariableModel]{
			prometheusVar(), promClusterVar(), nodeVar("gpuledger_fpga_info"),
		},
		rows: []row{
			{id: 1, title: "Cards", panels: []cog.Builder[dashboard.Panel]{
				fpgaInventoryTable(), fpgaBoardTable(), fpgaHoldersTable(), fpgaHeldPanel(), fpgaExecutionsPanel(),
			}},
			{id: 10, title: "Sensors", panels: []cog.Builder[dashboard.Panel]{
				fpgaTemperaturePanel(), fpgaPowerPanel(), fpgaVoltagePanel(), fpgaCurrentPanel(), fpgaFanPanel(), fpgaReadErrorsPanel(),
			}},
		},
	}
}

// fpgaMatch selects the cards of the selected nodes.
const fpgaMatch = `node=~"$node"`

// fpgaLegend names a card in legends.
const fpgaLegend = "{{node}} {{device}}"

func fpgaInventoryTable() cog.Builder[dashboard.Panel] {
	return tablePanel(2, "Cards",
		"The FPGA cards of the selected nodes: PCI user function (the device ID the kubelet reports), model, shell and the xclbin loaded.").
		Height(6).Span(halfWidth).
		WithTarget(promTable(`max by (node, device, model, shell, xclbin_uuid) (` + sel("gpuledger_fpga_info", fpgaMatch) + `)`)).
		WithTransformation(hideColumns(nil, "Time", "Value"))
}

func fpgaBoardTable() cog.Builder[dashboard.Panel] {
	return tablePanel(3, "Boards",
		"Board name, serial number and FPGA part of each card, as far as XRT reports them (real cards only).").
		Height(6).Span(halfWidth).
		WithTarget(promTable(`max by (node, device, board, serial, fpga_part) (` + sel("gpuledger_fpga_board_info", fpgaMatch) + `)`)).
		WithTransformation(hideColumns(nil, "Time", "Value"))
}

func fpgaHoldersTable() cog.Builder[dashboard.Panel] {
	return tablePanel(4, "Who holds each card",
		"The pods holding FPGA cards of the selected nodes now, with their user and project.").
		Height(6).
		WithTarget(promTable(`max by (node, device, model, namespace, pod, user, project) (` +
			held("gpuledger_allocation_devices", `class="fpga"`, fpgaMatch) + `)`)).
		WithTransformation(hideColumns(nil, "Time", "Value"))
}

func fpgaHeldPanel() cog.Builder[dashboard.Panel] {
	return stacked(timeseriesPanel(5, "Cards held by project",
		"FPGA cards of the selected nodes held by pods over time, by project.",
		unitDevices)).
		Min(0).
		WithTarget(promQuery(`sum by (project) (`+held("gpuledger_allocation_devices", `class="fpga"`, fpgaMatch)+`)`, "{{project}}"))
}

func fpgaExecutionsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(6, "Compute-unit executions",
		"Executions per second completed by each compute unit (XRT kds_custat_raw): the work the loaded kernel does.",
		units.OpsPerSecond).
		Min(0).
		WithTarget(promQuery(`rate(`+sel("gpuledger_fpga_compute_unit_usage_total", fpgaMatch)+`[$__rate_interval])`, "{{node}} {{device}} CU {{compute_unit}}"))
}

func fpgaTemperaturePanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(11, "Temperature",
		"Temperature of each sensor (XRT location ID: fpga0, fpga_hbm, cage_temp_0). The GPULedgerFPGATemperatureHigh alert fires above 90 °C.",
		units.Celsius).
		Thresholds(warnAbove(85, 90)).ThresholdsStyle(thresholdLines()).
		WithTarget(promQuery(sel("gpuledger_fpga_temperature_celsius", fpgaMatch), "{{node}} {{device}} {{sensor}}"))
}

func fpgaPowerPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(12, "Power draw",
		"Power draw of each card.",
		units.Watt).
		Min(0).
		WithTarget(promQuery(sel("gpuledger_fpga_power_watts", fpgaMatch), fpgaLegend))
}

func fpgaVoltagePanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(13, "Rail voltages",
		"Voltage of each power rail (XRT rail ID: 12v_pex, vccint, hbm_1v2); real cards only.",
		units.Volt).
		WithTarget(promQuery(sel("gpuledger_fpga_voltage_volts", fpgaMatch), "{{node}} {{device}} {{rail}}"))
}

func fpgaCurrentPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(14, "Rail currents",
		"Current drawn on each power rail; real cards only.",
		units.Ampere).
		Min(0).
		WithTarget(promQuery(sel("gpuledger_fpga_current_amperes", fpgaMatch), "{{node}} {{device}} {{rail}}"))
}

func fpgaFanPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(15, "Fan speed",
		"Fan speed of actively cooled cards (absent on passively cooled ones); real cards only.",
		units.RevolutionsPerMinute).
		Min(0).
		WithTarget(promQuery(sel("gpuledger_fpga_fan_speed_rpm", fpgaMatch), "{{node}} {{device}} {{fan}}"))
}

func fpgaReadErrorsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(16, "Read errors",
		"Values the FPGA source could not read or use (junk in a sysfs file, a failed or timed-out xbutil run, bad JSON), per scrape interval, by node and source.",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum by (node, device, source) (increase(`+sel("gpuledger_fpga_read_errors_total", fpgaMatch)+`[$__rate_interval]))`, "{{node}} {{device}} {{source}}"))
}
