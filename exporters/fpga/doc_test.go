package fpga

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/metrics/metricsdoc"
)

// Every family this source serves is in docs/metrics.md with its type and
// labels. (The shared check in exporters/ learns types and labels from the
// simulator, which serves only some FPGA families.)
func TestServedFamiliesDocumented(t *testing.T) {
	s := newSource(t, Options{SysfsRoot: sysfsTree(t, "u55c-u250"), XbutilSource: "testdata/xbutil/u55c-u250-v70.json"})
	poll(t, s)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promCollector{s})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 9 {
		t.Errorf("only %d families served", len(mfs))
	}
	metricsdoc.Check(t, "../../docs/metrics.md", mfs)
}
