package nvml

import (
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpuledger/gpuledger/exporters/metrics/metricsdoc"
)

// Every family the NVML source serves — those the simulator does not serve
// included — is documented with its type and labels.
func TestServedFamiliesDocumented(t *testing.T) {
	f := newH200(t)
	c, clk := newCollector(t, f, nil)
	c.poll()
	clk.now = clk.now.Add(10 * time.Second)
	f.GPUs[0].Fail["GetTemperature"] = nvml.ERROR_UNKNOWN
	c.poll()
	c.recordEvent(f.XID(0, 79), map[string]gpuRef{f.GPUs[0].UUID: {index: "0", uuid: f.GPUs[0].UUID}})
	mfs := gather(t, c)
	metricsdoc.Check(t, "../../docs/metrics.md", mfs)
	served := map[string]bool{}
	for _, mf := range mfs {
		served[mf.GetName()] = true
	}
	// The fake exercises every family of the source.
	for _, name := range []string{"gpuledger_gpu_memory_clock_hertz", "gpuledger_gpu_activity_ratio",
		"gpuledger_gpu_xid_errors_total", "gpuledger_gpu_nvml_errors_total", "gpuledger_mig_instance_activity_ratio",
		"gpuledger_gpu_utilization_ratio", "gpuledger_mig_instance_weight_ratio"} {
		if !served[name] {
			t.Errorf("%s not served by the H200 fake", name)
		}
	}
}
