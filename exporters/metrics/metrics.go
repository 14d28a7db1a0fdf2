// Package metrics describes, once, the metric families every exporter
// source serves: the simulator's and the real devices' collectors emit the
// same names and labels, so the aggregator, the dashboards and the alert
// rules read one schema. docs/metrics.md lists every family; a test fails
// when the two disagree.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// The label sets, in order.
var (
	// AllocationLabels are the labels of every allocation series, in order.
	AllocationLabels = []string{"node", "resource", "class", "device", "gpu_uuid", "gpu", "model", "profile",
		"namespace", "pod", "pod_uid", "user", "project", "queue", "site"}
	GPULabels      = []string{"node", "gpu", "uuid"}
	GPUInfoLabels  = []string{"node", "gpu", "uuid", "model", "mig_mode"}
	ECCLabels      = []string{"node", "gpu", "uuid", "type"}
	MIGLabels      = []string{"node", "gpu", "uuid", "mig_uuid", "gpu_instance_id", "compute_instance_id", "profile"}
	FPGALabels     = []string{"node", "device"}
	FPGAInfoLabels = []string{"node", "device", "model", "shell", "xclbin_uuid"}
	FPGATempLabels = []string{"node", "device", "sensor"}
	FPGACULabels   = []string{"node", "device", "compute_unit"}
)

// Allocations.
var (
	AllocStart = prometheus.NewDesc(collector.Namespace+"_allocation_start_time_seconds",
		"Start of the allocation of a device (or, on a virtual node, of a request) to a pod: the exact container start, in Unix seconds. Present while the allocation is active and, once it has ended, for the ended-allocation retention.",
		AllocationLabels, nil)
	AllocEnd = prometheus.NewDesc(collector.Namespace+"_allocation_end_time_seconds",
		"End of an allocation that ended within the ended-allocation retention: the exact container end, in Unix seconds.",
		AllocationLabels, nil)
	AllocWeight = prometheus.NewDesc(collector.Namespace+"_allocation_weight_ratio",
		"Weight of the allocation in GPUs: 1 for a whole GPU or an FPGA card, the MIG slice or fraction weight, the requested GPU count on a virtual node.",
		AllocationLabels, nil)
	AllocDevices = prometheus.NewDesc(collector.Namespace+"_allocation_devices",
		"Raw number of devices the allocation holds: 1 per device, or the requested count on a virtual node.",
		AllocationLabels, nil)
	AllocActivity = prometheus.NewDesc(collector.Namespace+"_allocation_activity_ratio",
		"Current activity of an active allocation's share of its device, from 0 (idle) to 1 (fully busy).",
		AllocationLabels, nil)
)

// GPUs.
var (
	GPUInfo = prometheus.NewDesc(collector.Namespace+"_gpu_info",
		"Identity of a physical GPU; the value is always 1.",
		GPUInfoLabels, nil)
	GPUMemoryTotal = prometheus.NewDesc(collector.Namespace+"_gpu_memory_total_bytes",
		"Frame buffer memory of the GPU, in bytes.",
		GPULabels, nil)
	GPUMemoryUsed = prometheus.NewDesc(collector.Namespace+"_gpu_memory_used_bytes",
		"Frame buffer memory in use on the GPU, all MIG instances included, in bytes.",
		GPULabels, nil)
	GPUPower = prometheus.NewDesc(collector.Namespace+"_gpu_power_watts",
		"Board power draw of the GPU, in watts.",
		GPULabels, nil)
	GPUEnergy = prometheus.NewDesc(collector.Namespace+"_gpu_energy_joules_total",
		"Energy the GPU consumed since the driver was loaded, in joules.",
		GPULabels, nil)
	GPUTemperature = prometheus.NewDesc(collector.Namespace+"_gpu_temperature_celsius",
		"Core temperature of the GPU, in degrees Celsius.",
		GPULabels, nil)
	GPUClock = prometheus.NewDesc(collector.Namespace+"_gpu_sm_clock_hertz",
		"Streaming multiprocessor clock of the GPU, in hertz.",
		GPULabels, nil)
	GPUUtil = prometheus.NewDesc(collector.Namespace+"_gpu_utilization_ratio",
		"Fraction of the last sample period during which the GPU was busy, from 0 to 1. Absent on MIG-enabled GPUs, where NVML does not report it.",
		GPULabels, nil)
	GPUECC = prometheus.NewDesc(collector.Namespace+"_gpu_ecc_errors_total",
		"Memory ECC errors of the GPU since the driver was loaded, by type (corrected or uncorrected).",
		ECCLabels, nil)
)

// MIG instances.
var (
	MIGInfo = prometheus.NewDesc(collector.Namespace+"_mig_instance_info",
		"Identity of a MIG instance of a GPU; the value is always 1.",
		MIGLabels, nil)
	MIGWeight = prometheus.NewDesc(collector.Namespace+"_mig_instance_weight_ratio",
		"Accounting weight of the MIG instance in GPUs: the larger of its compute and memory shares of the parent GPU.",
		MIGLabels, nil)
	MIGMemoryTotal = prometheus.NewDesc(collector.Namespace+"_mig_instance_memory_total_bytes",
		"Memory of the MIG instance, in bytes.",
		MIGLabels, nil)
	MIGMemoryUsed = prometheus.NewDesc(collector.Namespace+"_mig_instance_memory_used_bytes",
		"Memory in use on the MIG instance, in bytes.",
		MIGLabels, nil)
	MIGActivity = prometheus.NewDesc(collector.Namespace+"_mig_instance_activity_ratio",
		"Fraction of time the MIG instance's graphics engine was active, from 0 to 1.",
		MIGLabels, nil)
)

// FPGAs.
var (
	FPGAInfo = prometheus.NewDesc(collector.Namespace+"_fpga_info",
		"Identity of an FPGA card and the shell and xclbin loaded on it; the value is always 1.",
		FPGAInfoLabels, nil)
	FPGATemperature = prometheus.NewDesc(collector.Namespace+"_fpga_temperature_celsius",
		"Temperature of an FPGA card's sensor, in degrees Celsius.",
		FPGATempLabels, nil)
	FPGAPower = prometheus.NewDesc(collector.Namespace+"_fpga_power_watts",
		"Power draw of the FPGA card, in watts.",
		FPGALabels, nil)
	FPGAComputeUnit = prometheus.NewDesc(collector.Namespace+"_fpga_compute_unit_usage_total",
		"Executions the FPGA card's compute unit completed since the xclbin was loaded.",
		FPGACULabels, nil)
)

// The exporter.
var (
	ExporterTime = prometheus.NewDesc(collector.Namespace+"_exporter_time_seconds",
		"The exporter's clock when the metrics were produced, in Unix seconds: simulated time in sim mode.",
		nil, nil)
)
