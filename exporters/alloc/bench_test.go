package alloc_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/alloc"
	"github.com/gpuledger/gpuledger/exporters/kubelet"
)

// staticKubelet always answers the same snapshot.
type staticKubelet struct{ s *kubelet.Snapshot }

func (k staticKubelet) Snapshot() *kubelet.Snapshot { return k.s }

// busyNode is a collector over n running pods, each holding one
// time-sliced replica.
func busyNode(b *testing.B, n int) *alloc.Collector {
	b.Helper()
	pods := newFakePods()
	snap := &kubelet.Snapshot{At: t0, Polled: t0}
	for i := range n {
		name := fmt.Sprintf("job-%05d", i)
		pods.set(running(fmt.Sprintf("uid-%05d", i), "batch", name, t0.Add(-time.Hour), bob))
		snap.Pods = append(snap.Pods, kubelet.Pod{Namespace: "batch", Name: name, Containers: []kubelet.Container{{
			Name: "main", Devices: []kubelet.Devices{{Resource: "nvidia.com/gpu.shared", IDs: []string{fmt.Sprintf("%s::%d", gpu2, i)}}},
		}}})
	}
	c, err := alloc.New(staticKubelet{snap}, pods, inventory(b), alloc.Options{Node: nodeName, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkUpdate is the scrape path: sending ready-made metrics.
func BenchmarkUpdate(b *testing.B) {
	c := busyNode(b, 2000)
	ch := make(chan prometheus.Metric, 16384)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Update(ch); err != nil {
			b.Fatal(err)
		}
		for len(ch) > 0 {
			<-ch
		}
	}
}

// BenchmarkReconcile is the join run after each kubelet poll.
func BenchmarkReconcile(b *testing.B) {
	c := busyNode(b, 2000)
	b.ReportAllocs()
	for b.Loop() {
		c.Reconcile()
	}
}
