package intervals

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// benchCluster generates the scrapes of a busy cluster on the fly: nodes ×
// slots allocations, each slot's pod replaced every two hours (the ended
// pod's end series exported for the hour after), eight GPUs with energy
// counters per node, 15-second scrapes. Scrapes are built into a ring of
// buffers, reused once the Reconstructor has closed their windows.
type benchCluster struct {
	nodes, slots int
	names        []string
	gpus         [][]string
	uids         map[[3]int]string
	ring         [][][]observe.Alloc // [round % len][node]
	gpuRing      [][][]observe.GPU
}

const (
	benchStep  = 15_000       // ms
	benchEpoch = 2 * 3600     // s: a pod's life
	benchStart = int64(1.8e9) // s, on the hour
)

func newBenchCluster(nodes, slots int) *benchCluster {
	c := &benchCluster{nodes: nodes, slots: slots, uids: map[[3]int]string{}}
	for n := range nodes {
		c.names = append(c.names, fmt.Sprintf("gpu-node-%03d", n))
		var g []string
		for i := range 8 {
			g = append(g, fmt.Sprintf("GPU-%03d-%d", n, i))
		}
		c.gpus = append(c.gpus, g)
	}
	c.ring = make([][][]observe.Alloc, 64)
	c.gpuRing = make([][][]observe.GPU, 64)
	for i := range c.ring {
		c.ring[i] = make([][]observe.Alloc, nodes)
		c.gpuRing[i] = make([][]observe.GPU, nodes)
	}
	return c
}

func (c *benchCluster) uid(n, slot, epoch int) string {
	k := [3]int{n, slot, epoch}
	u, ok := c.uids[k]
	if !ok {
		u = fmt.Sprintf("pod-%03d-%02d-%06d", n, slot, epoch)
		c.uids[k] = u
	}
	return u
}

// round returns the scrapes of round i and how many allocation entries
// they hold.
func (c *benchCluster) round(i int) ([]observe.Scrape, int) {
	ms := benchStart*1000 + int64(i)*benchStep
	sec := ms / 1000
	out := make([]observe.Scrape, 0, c.nodes)
	entries := 0
	for n := range c.nodes {
		allocs := c.ring[i%len(c.ring)][n][:0]
		for slot := range c.slots {
			// Slots are staggered so that pods end all the time.
			shift := int64(slot*benchEpoch/c.slots + n*97)
			epoch := int((sec + shift) / benchEpoch)
			start := int64(epoch)*benchEpoch - shift
			gpu := c.gpus[n][slot%8]
			mk := func(e int, start int64) observe.Alloc {
				return observe.Alloc{
					AllocKey: observe.AllocKey{Node: c.names[n], Device: gpu, PodUID: c.uid(n, slot, e), Resource: "nvidia.com/gpu"},
					Attrs: observe.Attrs{Class: "gpu", GPUUUID: gpu, Model: "NVIDIA A100-SXM4-80GB", Namespace: "ns", Pod: "pod",
						User: "user", Project: "project"},
					Start: start, WeightMilli: 1000, Devices: 1,
				}
			}
			a := mk(epoch, start)
			a.ActivityMilli = int64((i*31 + slot*17 + n) % 1001)
			allocs = append(allocs, a)
			if sec-start < 3600 { // the previous pod, ended, within the retention
				p := mk(epoch-1, start-benchEpoch)
				p.End, p.ActivityMilli = start, -1
				allocs = append(allocs, p)
			}
		}
		c.ring[i%len(c.ring)][n] = allocs
		gpus := c.gpuRing[i%len(c.ring)][n][:0]
		for g, u := range c.gpus[n] {
			gpus = append(gpus, observe.GPU{Node: c.names[n], UUID: u, Model: "NVIDIA A100-SXM4-80GB",
				EnergyMillijoules: int64(i)*3_000_000 + int64(g)})
		}
		c.gpuRing[i%len(c.ring)][n] = gpus
		entries += len(allocs)
		out = append(out, observe.Scrape{Target: c.names[n], Time: ms + int64(n%1000), OK: true, Allocs: allocs, GPUs: gpus})
	}
	return out, entries
}

// BenchmarkObserveClose replays a 300-node cluster (8 allocations and 8
// GPUs per node, 15-second scrapes) through Observe and Close, closing 30 s
// behind the scrapes as the aggregator does. One op is one round of
// scrapes of every node; ns/sample is the cost per allocation entry
// observed by Observe and Close (the building of the scrapes, timed apart
// as build-ns/sample, excluded).
func BenchmarkObserveClose(b *testing.B) {
	for _, nodes := range []int{300} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			c := newBenchCluster(nodes, 8)
			r, err := New(Config{Cluster: "bench", ScrapeInterval: 15 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			var entries, windows int
			var build, work time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				scrapes, n := c.round(i)
				t1 := time.Now()
				entries += n
				for _, s := range scrapes {
					r.Observe(s)
				}
				windows += len(r.Close(scrapes[0].Time/1000 - 30))
				build, work = build+t1.Sub(t0), work+time.Since(t1)
			}
			b.StopTimer()
			perSample := float64(work.Nanoseconds()) / float64(entries)
			buildPerSample := float64(build.Nanoseconds()) / float64(entries)
			b.ReportMetric(perSample, "ns/sample")
			b.ReportMetric(buildPerSample, "build-ns/sample")
			b.ReportMetric(float64(entries)/float64(b.N), "samples/op")
			// A month of 15-second rounds at this rate.
			b.ReportMetric(perSample*float64(entries)/float64(b.N)*30*24*240/1e9, "month-s")
			st := r.Stats()
			if windows == 0 && b.N > 40 || st.BadAllocs != 0 || st.Rejected != 0 {
				b.Fatalf("windows %d, stats %+v", windows, st)
			}
		})
	}
}
