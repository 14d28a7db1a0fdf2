package alloc_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/metrics/metricsdoc"
)

// Every family the collector serves is documented with its type and labels.
func TestServedFamiliesDocumented(t *testing.T) {
	h := goldenNode(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promCollector{h.c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metricsdoc.Check(t, "../../docs/metrics.md", mfs)
	served := map[string]bool{}
	for _, mf := range mfs {
		served[mf.GetName()] = true
	}
	for _, name := range []string{famStart, famEnd, famWeight, famDevices, famActivity, famAvail, famUnres} {
		if !served[name] {
			t.Errorf("the golden node does not serve %s", name)
		}
	}
}
