package kube

import corev1 "k8s.io/api/core/v1"

// Node labels and annotations read by the exporter.
const (
	// LabelVirtualNode marks an InterLink virtual node, with the value
	// VirtualKubelet.
	LabelVirtualNode = "virtual-node.interlink/type"
	VirtualKubelet   = "virtual-kubelet"
	// KeySite names the remote site of a virtual node: a label, else an
	// annotation of that name; without either the site is the node's name.
	KeySite = "interlink.io/site"
	// KeyGPUModel names the model of the remote GPUs behind a virtual node:
	// a label, else an annotation; else the GPU feature discovery label
	// LabelGPUProduct when the node carries one.
	KeyGPUModel     = "gpuledger.io/gpu-model"
	LabelGPUProduct = "nvidia.com/gpu.product"
)

// NodeInfo is what the exporter reads of a node.
type NodeInfo struct {
	// Virtual is true for an InterLink virtual node.
	Virtual bool
	// Site is the virtual node's site ("" for a real node).
	Site string
	// GPUModel is the remote GPUs' model of a virtual node, when declared.
	GPUModel string
}

// nodeInfo reads a node's labels and annotations.
func nodeInfo(n *corev1.Node) NodeInfo {
	if n.Labels[LabelVirtualNode] != VirtualKubelet {
		return NodeInfo{}
	}
	ni := NodeInfo{Virtual: true, Site: n.Name}
	if s := labelOrAnnotation(n, KeySite); s != "" {
		ni.Site = s
	}
	ni.GPUModel = labelOrAnnotation(n, KeyGPUModel)
	if ni.GPUModel == "" {
		ni.GPUModel = n.Labels[LabelGPUProduct]
	}
	return ni
}

func labelOrAnnotation(n *corev1.Node, key string) string {
	if v := n.Labels[key]; v != "" {
		return v
	}
	return n.Annotations[key]
}
