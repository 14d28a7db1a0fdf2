package exporters

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

func gatherOf(t testing.TB, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// The process collector serves the library's process metrics, same names,
// help and types, without the network counters, with live values.
func TestProcessCollector(t *testing.T) {
	c := newProcessCollector()
	if _, ok := c.(*processCollector); !ok {
		t.Fatalf("newProcessCollector gave %T, want the /proc collector", c)
	}
	ours := gatherOf(t, c)
	lib := gatherOf(t, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var names, want []string
	for n := range ours {
		names = append(names, n)
	}
	for n, mf := range lib {
		if strings.HasPrefix(n, "process_network_") {
			continue
		}
		want = append(want, n)
		if o := ours[n]; o != nil && (o.GetHelp() != mf.GetHelp() || o.GetType() != mf.GetType()) {
			t.Errorf("%s: help %q type %v; the library's: %q %v", n, o.GetHelp(), o.GetType(), mf.GetHelp(), mf.GetType())
		}
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("families %v, want the library's without the network counters: %v", names, want)
	}
	value := func(n string) float64 {
		m := ours[n].GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	start := time.Unix(int64(value("process_start_time_seconds")), 0)
	if since := time.Since(start); since < -time.Minute || since > 24*time.Hour {
		t.Errorf("process_start_time_seconds %v is not this test's start", start)
	}
	if value("process_resident_memory_bytes") < 1<<20 || value("process_open_fds") < 3 ||
		value("process_max_fds") < value("process_open_fds") || value("process_virtual_memory_bytes") < value("process_resident_memory_bytes") {
		t.Errorf("implausible values: %v", ours)
	}
	// CPU time is read again on each scrape: spin until it advances (in
	// ticks of 10 ms); the bound only keeps a broken test from hanging.
	cpu0 := value("process_cpu_seconds_total")
	advanced := false
	for deadline := time.Now().Add(10 * time.Second); !advanced && time.Now().Before(deadline); {
		spin(20 * time.Millisecond)
		advanced = gatherOf(t, c)["process_cpu_seconds_total"].GetMetric()[0].GetCounter().GetValue() > cpu0
	}
	if !advanced {
		t.Errorf("process_cpu_seconds_total stayed at %v through 10 s of spinning", cpu0)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// spin keeps a core busy for d.
func spin(d time.Duration) {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
	}
	_ = n
}

// BenchmarkProcessCollector compares a collection of the exporter's process
// collector with the library's.
func BenchmarkProcessCollector(b *testing.B) {
	for _, c := range []struct {
		name string
		c    prometheus.Collector
	}{
		{"exporter", newProcessCollector()},
		{"client_golang", collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
	} {
		b.Run(c.name, func(b *testing.B) {
			ch := make(chan prometheus.Metric, 16)
			b.ReportAllocs()
			for b.Loop() {
				c.c.Collect(ch)
				for len(ch) > 0 {
					<-ch
				}
			}
		})
	}
}
