package nvml

import (
	"testing"

	"github.com/gpuledger/gpuledger/exporters/nvml/nvmltest"
)

// The fakes are nvmltest's: go-nvml's mock server completed with the
// telemetry, MIG device handles, GPM samples and an event set.

const mib = nvmltest.MiB

// newA100 is the mixed A100 node: eight A100-SXM4-80GB, GPUs 6 and 7 in
// MIG mode (testdata/a100.prom is its exposition).
func newA100(t *testing.T) *nvmltest.Lib {
	return nvmltest.NewA100(t, "a100a100", nvmltest.A100Specs())
}

// newH200 is the H200 node: one whole GPU, one in MIG mode, GPM supported.
func newH200(t *testing.T) *nvmltest.Lib { return nvmltest.NewH200(t) }
