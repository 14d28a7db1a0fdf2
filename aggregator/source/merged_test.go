package source

import (
	"context"
	"errors"
	"slices"
	"testing"
)

type failing struct{}

func (failing) Targets(context.Context) ([]Target, error) { return nil, errors.New("API server down") }

func TestMergedNamesTargetsByDiscoverer(t *testing.T) {
	nodes := StaticTargets{{Name: "gpu-1", URL: "http://10.0.0.1:9835/metrics"}}
	cluster := StaticTargets{{Name: "gpu-1", URL: "http://10.0.0.7:9835/metrics"}}
	m := Merged{Names: []string{"gpuledger/exporter", "gpuledger/exporter-cluster"}, Discoverers: []Discoverer{cluster, nodes}}
	got, err := m.Targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range got {
		names = append(names, tg.Name)
	}
	want := []string{"gpuledger/exporter-cluster/gpu-1", "gpuledger/exporter/gpu-1"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("targets %v, want %v: two exporters on one node must be two targets", names, want)
	}
	m.Discoverers[1] = failing{}
	if _, err := m.Targets(context.Background()); err == nil {
		t.Error("one discoverer failing: no error; the other's exporters would look gone")
	}
}
