package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// Label sets of the families only a real device source serves.
var (
	// XIDLabels are the labels of the XID error counter: the GPU and the
	// XID code, in decimal.
	XIDLabels = []string{"node", "gpu", "uuid", "xid"}
	// NVMLErrorLabels are the labels of the NVML call error counter: the
	// GPU and the NVML function that failed.
	NVMLErrorLabels = []string{"node", "gpu", "uuid", "call"}
)

// GPU families read from NVML that the simulator does not model.
var (
	GPUMemoryClock = prometheus.NewDesc(collector.Namespace+"_gpu_memory_clock_hertz",
		"Memory clock of the GPU, in hertz.",
		GPULabels, nil)
	GPUActivity = prometheus.NewDesc(collector.Namespace+"_gpu_activity_ratio",
		"Fraction of the last poll interval during which the GPU's graphics engine was active, from 0 to 1, measured by GPU performance monitoring (Hopper and newer). Present on MIG-enabled GPUs too, for the whole GPU.",
		GPULabels, nil)
	GPUXIDErrors = prometheus.NewDesc(collector.Namespace+"_gpu_xid_errors_total",
		"Critical XID errors the GPU reported since the exporter started, by XID code.",
		XIDLabels, nil)
	GPUNVMLErrors = prometheus.NewDesc(collector.Namespace+"_gpu_nvml_errors_total",
		"NVML calls about the GPU that failed for a reason other than the feature being unsupported, since the exporter started, by NVML function.",
		NVMLErrorLabels, nil)
)
