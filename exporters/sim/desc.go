package sim

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// The label sets. docs/metrics.md lists every family with its labels; a
// test fails when the two disagree.
var (
	// AllocationLabels are the labels of every allocation series, in order.
	AllocationLabels = []string{"node", "resource", "class", "device", "gpu_uuid", "gpu", "model", "profile",
		"namespace", "pod", "pod_uid", "user", "project", "queue", "site"}
	gpuLabels     = []string{"node", "gpu", "uuid"}
	gpuInfoLabels = []string{"node", "gpu", "uuid", "model", "mig_mode"}
	eccLabels     = []string{"node", "gpu", "uuid", "type"}
	migLabels     = []string{"node", "gpu", "uuid", "mig_uuid", "gpu_instance_id", "compute_instance_id", "profile"}
	fpgaLabels    = []string{"node", "device"}
	fpgaInfo      = []string{"node", "device", "model", "shell", "xclbin_uuid"}
	fpgaTemp      = []string{"node", "device", "sensor"}
	fpgaCU        = []string{"node", "device", "compute_unit"}
)

// Allocations.
var (
	allocStartDesc = prometheus.NewDesc(collector.Namespace+"_allocation_start_time_seconds",
		"Start of the allocation of a device (or, on a virtual node, of a request) to a pod: the exact container start, in Unix seconds. Present while the allocation is active and, once it has ended, for the ended-allocation retention.",
		AllocationLabels, nil)
	allocEndDesc = prometheus.NewDesc(collector.Namespace+"_allocation_end_time_seconds",
		"End of an allocation that ended within the ended-allocation retention: the exact container end, in Unix seconds.",
		AllocationLabels, nil)
	allocWeightDesc = prometheus.NewDesc(collector.Namespace+"_allocation_weight_ratio",
		"Weight of the allocation in GPUs: 1 for a whole GPU or an FPGA card, the MIG slice or fraction weight, the requested GPU count on a virtual node.",
		AllocationLabels, nil)
	allocDevicesDesc = prometheus.NewDesc(collector.Namespace+"_allocation_devices",
		"Raw number of devices the allocation holds: 1 per device, or the requested count on a virtual node.",
		AllocationLabels, nil)
	allocActivityDesc = prometheus.NewDesc(collector.Namespace+"_allocation_activity_ratio",
		"Current activity of an active allocation's share of its device, from 0 (idle) to 1 (fully busy).",
		AllocationLabels, nil)
)

// GPUs.
var (
	gpuInfoDesc = prometheus.NewDesc(collector.Namespace+"_gpu_info",
		"Identity of a physical GPU; the value is always 1.",
		gpuInfoLabels, nil)
	gpuMemTotalDesc = prometheus.NewDesc(collector.Namespace+"_gpu_memory_total_bytes",
		"Frame buffer memory of the GPU, in bytes.",
		gpuLabels, nil)
	gpuMemUsedDesc = prometheus.NewDesc(collector.Namespace+"_gpu_memory_used_bytes",
		"Frame buffer memory in use on the GPU, all MIG instances included, in bytes.",
		gpuLabels, nil)
	gpuPowerDesc = prometheus.NewDesc(collector.Namespace+"_gpu_power_watts",
		"Board power draw of the GPU, in watts.",
		gpuLabels, nil)
	gpuEnergyDesc = prometheus.NewDesc(collector.Namespace+"_gpu_energy_joules_total",
		"Energy the GPU consumed since the driver was loaded, in joules.",
		gpuLabels, nil)
	gpuTempDesc = prometheus.NewDesc(collector.Namespace+"_gpu_temperature_celsius",
		"Core temperature of the GPU, in degrees Celsius.",
		gpuLabels, nil)
	gpuClockDesc = prometheus.NewDesc(collector.Namespace+"_gpu_sm_clock_hertz",
		"Streaming multiprocessor clock of the GPU, in hertz.",
		gpuLabels, nil)
	gpuUtilDesc = prometheus.NewDesc(collector.Namespace+"_gpu_utilization_ratio",
		"Fraction of the last sample period during which the GPU was busy, from 0 to 1. Absent on MIG-enabled GPUs, where NVML does not report it.",
		gpuLabels, nil)
	gpuECCDesc = prometheus.NewDesc(collector.Namespace+"_gpu_ecc_errors_total",
		"Memory ECC errors of the GPU since the driver was loaded, by type (corrected or uncorrected).",
		eccLabels, nil)
)

// MIG instances.
var (
	migInfoDesc = prometheus.NewDesc(collector.Namespace+"_mig_instance_info",
		"Identity of a MIG instance of a GPU; the value is always 1.",
		migLabels, nil)
	migWeightDesc = prometheus.NewDesc(collector.Namespace+"_mig_instance_weight_ratio",
		"Accounting weight of the MIG instance in GPUs: the larger of its compute and memory shares of the parent GPU.",
		migLabels, nil)
	migMemTotalDesc = prometheus.NewDesc(collector.Namespace+"_mig_instance_memory_total_bytes",
		"Memory of the MIG instance, in bytes.",
		migLabels, nil)
	migMemUsedDesc = prometheus.NewDesc(collector.Namespace+"_mig_instance_memory_used_bytes",
		"Memory in use on the MIG instance, in bytes.",
		migLabels, nil)
	migActivityDesc = prometheus.NewDesc(collector.Namespace+"_mig_instance_activity_ratio",
		"Fraction of time the MIG instance's graphics engine was active, from 0 to 1.",
		migLabels, nil)
)

// FPGAs.
var (
	fpgaInfoDesc = prometheus.NewDesc(collector.Namespace+"_fpga_info",
		"Identity of an FPGA card and the shell and xclbin loaded on it; the value is always 1.",
		fpgaInfo, nil)
	fpgaTempDesc = prometheus.NewDesc(collector.Namespace+"_fpga_temperature_celsius",
		"Temperature of an FPGA card's sensor, in degrees Celsius.",
		fpgaTemp, nil)
	fpgaPowerDesc = prometheus.NewDesc(collector.Namespace+"_fpga_power_watts",
		"Power draw of the FPGA card, in watts.",
		fpgaLabels, nil)
	fpgaCUDesc = prometheus.NewDesc(collector.Namespace+"_fpga_compute_unit_usage_total",
		"Executions the FPGA card's compute unit completed since the xclbin was loaded.",
		fpgaCU, nil)
)

// The exporter.
var (
	timeDesc = prometheus.NewDesc(collector.Namespace+"_exporter_time_seconds",
		"The exporter's clock when the metrics were produced, in Unix seconds: simulated time in sim mode.",
		nil, nil)
)
