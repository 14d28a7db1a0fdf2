package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// Attribution: the state of the sources the allocation collector joins.
var (
	AttributionSourceLabels = []string{"node", "source"}

	AttributionAvailable = prometheus.NewDesc(collector.Namespace+"_attribution_available",
		"Whether an attribution source answered at the allocation collector's last update (1) or not (0): source kubelet is the kubelet pod-resources API, apiserver the pod informers. While a source is unavailable the allocations seen before are kept and new ones wait.",
		AttributionSourceLabels, nil)
	AttributionUnresolved = prometheus.NewDesc(collector.Namespace+"_attribution_unresolved_devices",
		"Device assignments of the kubelet's last answer that could not be fully resolved: the pod is unknown to the API server, the device ID is malformed, or the device inventory does not know the device.",
		[]string{"node"}, nil)
)
