package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// DCGM label sets, in order.
var (
	// DCGMDeviceLabels are the labels of the DCGM activity series: a whole
	// GPU has empty mig_uuid, gpu_instance_id and profile.
	DCGMDeviceLabels = []string{"node", "gpu", "uuid", "mig_uuid", "gpu_instance_id", "profile"}
	DCGMHealthLabels = []string{"node"}
	DCGMDropLabels   = []string{"node", "reason"}
)

// DCGM profiling activity, read from the node's dcgm-exporter.
var (
	DCGMGraphicsActivity = prometheus.NewDesc(collector.Namespace+"_dcgm_graphics_activity_ratio",
		"Fraction of time the graphics or compute engine of a GPU or MIG instance was active, from 0 to 1 (DCGM_FI_PROF_GR_ENGINE_ACTIVE).",
		DCGMDeviceLabels, nil)
	DCGMTensorActivity = prometheus.NewDesc(collector.Namespace+"_dcgm_tensor_activity_ratio",
		"Fraction of cycles the tensor pipe of a GPU or MIG instance was active, from 0 to 1 (DCGM_FI_PROF_PIPE_TENSOR_ACTIVE).",
		DCGMDeviceLabels, nil)
	DCGMDRAMActivity = prometheus.NewDesc(collector.Namespace+"_dcgm_dram_activity_ratio",
		"Fraction of cycles the memory interface of a GPU or MIG instance was sending or receiving data, from 0 to 1 (DCGM_FI_PROF_DRAM_ACTIVE).",
		DCGMDeviceLabels, nil)
	DCGMSMActivity = prometheus.NewDesc(collector.Namespace+"_dcgm_sm_activity_ratio",
		"Fraction of time at least one warp was active on a streaming multiprocessor of a GPU or MIG instance, averaged over them, from 0 to 1 (DCGM_FI_PROF_SM_ACTIVE).",
		DCGMDeviceLabels, nil)
)

// The DCGM source's health.
var (
	DCGMUp = prometheus.NewDesc(collector.Namespace+"_dcgm_up",
		"Whether the last poll of the node's dcgm-exporter succeeded (1) or failed (0).",
		DCGMHealthLabels, nil)
	DCGMLastSuccess = prometheus.NewDesc(collector.Namespace+"_dcgm_last_success_timestamp_seconds",
		"When the last successful poll of the node's dcgm-exporter began, in Unix seconds.",
		DCGMHealthLabels, nil)
	DCGMSamplesDropped = prometheus.NewDesc(collector.Namespace+"_dcgm_samples_dropped_total",
		"Samples of the node's dcgm-exporter dropped since the exporter started, by reason.",
		DCGMDropLabels, nil)
)
