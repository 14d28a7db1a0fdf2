package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// Label sets of the cluster-mode families, in order.
var (
	// PendingLabels are the labels of a pending pod's request.
	PendingLabels = []string{"namespace", "pod", "pod_uid", "resource", "user", "project", "queue"}
	// QuotaLabels are the labels of a Kueue ClusterQueue's quota.
	QuotaLabels = []string{"cluster_queue", "flavor", "resource"}
)

// Cluster mode: what the Kubernetes API knows beyond the nodes' devices.
var (
	PendingPodRequests = prometheus.NewDesc(collector.Namespace+"_pending_pod_requests",
		"Accelerators a pending pod requests, by extended-resource name: the pod exists but none of its containers has started (unscheduled, waiting for a device, or pulling its image).",
		PendingLabels, nil)
	KueueNominalQuota = prometheus.NewDesc(collector.Namespace+"_kueue_clusterqueue_nominal_quota",
		"Nominal quota of a Kueue ClusterQueue for an accelerator resource in one resource flavor, in devices (spec.resourceGroups[].flavors[].resources[].nominalQuota).",
		QuotaLabels, nil)
)
