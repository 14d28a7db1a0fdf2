package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// Label sets of the FPGA families read from real cards (exporters/fpga).
var (
	FPGARailLabels      = []string{"node", "device", "rail"}
	FPGAFanLabels       = []string{"node", "device", "fan"}
	FPGABoardInfoLabels = []string{"node", "device", "board", "serial", "fpga_part"}
	FPGAReadErrorLabels = []string{"node", "device", "source"}
)

// FPGA card telemetry beyond temperature and power.
var (
	FPGAVoltage = prometheus.NewDesc(collector.Namespace+"_fpga_voltage_volts",
		"Voltage of an FPGA card's power rail, named by XRT rail ID (12v_pex, vccint), in volts.",
		FPGARailLabels, nil)
	FPGACurrent = prometheus.NewDesc(collector.Namespace+"_fpga_current_amperes",
		"Current drawn on an FPGA card's power rail, named by XRT rail ID (12v_pex, vccint), in amperes.",
		FPGARailLabels, nil)
	FPGAFanSpeed = prometheus.NewDesc(collector.Namespace+"_fpga_fan_speed_rpm",
		"Speed of an FPGA card's fan, in revolutions per minute.",
		FPGAFanLabels, nil)
	FPGABoardInfo = prometheus.NewDesc(collector.Namespace+"_fpga_board_info",
		"Board identity of an FPGA card: board name, serial number and FPGA part, as far as known; the value is always 1.",
		FPGABoardInfoLabels, nil)
	FPGAReadErrors = prometheus.NewDesc(collector.Namespace+"_fpga_read_errors_total",
		"Values the FPGA source could not read or use since the exporter started (junk in a sysfs file, a failed or timed-out xbutil run, bad JSON), by card and source (sysfs or xbutil).",
		FPGAReadErrorLabels, nil)
)
