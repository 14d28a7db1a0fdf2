package trace

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gpuledger/gpuledger/accounting"
)

// alibabaModels maps the v2023 node list's model codes to the names NVML
// reports. G1–G3 are undisclosed in the trace and keep a recognisable name
// that no accounting table mistakes for a real model.
var alibabaModels = map[string]string{
	"T4":      "Tesla T4",
	"P100":    "Tesla P100-PCIE-16GB",
	"V100M16": "Tesla V100-SXM2-16GB",
	"V100M32": "Tesla V100-SXM2-32GB",
	"A10":     "NVIDIA A10",
	"G1":      "Alibaba-G1-undisclosed",
	"G2":      "Alibaba-G2-undisclosed",
	"G3":      "Alibaba-G3-undisclosed",
}

// AlibabaModel returns the GPU model name for a v2023 model code.
func AlibabaModel(code string) (string, error) {
	if m, ok := alibabaModels[code]; ok {
		return m, nil
	}
	known := make([]string, 0, len(alibabaModels))
	for k := range alibabaModels {
		known = append(known, k)
	}
	sort.Strings(known)
	return "", fmt.Errorf("unknown GPU model %q (known: %s)", code, strings.Join(known, ", "))
}

// PhillyModel names the GPUs of the synthesised Philly nodes: the derived
// trace does not say which GPUs its jobs ran on.
const PhillyModel = "Philly-undisclosed"

// PhillyGPUsPerNode is the size of a synthesised Philly node.
const PhillyGPUsPerNode = 8

// MIG retyping (Options.MIGShare).
const (
	// MIGModel is the model of retyped nodes' GPUs.
	MIGModel = "NVIDIA A100-SXM4-80GB"
	// MIGConfig is the mig-parted configuration every retyped GPU runs.
	MIGConfig = "all-balanced"
	// migNodeGPUs is the GPU count of the nodes that may be retyped.
	migNodeGPUs = 8
)

// migSlice is one MIG device of the layout, with its GPU-instance ID.
type migSlice struct {
	profile string
	gi      int
}

// migLayout is A100-80GB all-balanced: 3g.40gb + 2g.20gb + 2 × 1g.10gb,
// all seven compute slices. GPU-instance IDs are those the driver assigns
// when the layout is created in this order.
var migLayout = []migSlice{
	{"3g.40gb", 2},
	{"2g.20gb", 3},
	{"1g.10gb", 9},
	{"1g.10gb", 10},
}

// migWeights returns each profile of the layout with its weight for
// MIGModel, lightest first.
func migWeights() ([]profileWeight, error) {
	seen := map[string]bool{}
	var out []profileWeight
	for _, s := range migLayout {
		if seen[s.profile] {
			continue
		}
		seen[s.profile] = true
		w, err := accounting.MIGWeight(MIGModel, s.profile)
		if err != nil {
			return nil, err
		}
		out = append(out, profileWeight{profile: s.profile, weight: w})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].weight < out[j].weight })
	return out, nil
}

type profileWeight struct {
	profile string
	weight  int64
}

// productLabel is the nvidia.com/gpu.product value GPU feature discovery
// would publish: the model with spaces as dashes.
func productLabel(model string) string { return strings.ReplaceAll(model, " ", "-") }
