package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var valueDesc = prometheus.NewDesc("test_value", "A test value.", []string{"source"}, nil)

// fake is a collector with a chosen outcome.
type fake struct {
	name  string
	err   error
	sleep time.Duration
	at    time.Time
}

func (f fake) Update(ch chan<- prometheus.Metric) error {
	time.Sleep(f.sleep)
	if f.err != nil && !errors.Is(f.err, ErrNoData) {
		return f.err
	}
	v := 1.0
	if !f.at.IsZero() {
		v = float64(f.at.Unix())
	}
	ch <- prometheus.MustNewConstMetric(valueDesc, prometheus.GaugeValue, v, f.name)
	return f.err
}

type pinnable struct{ fake }

func (p pinnable) At(t time.Time) (Collector, error) {
	if t.IsZero() {
		return nil, errors.New("no such instant")
	}
	f := p.fake
	f.at = t
	return f, nil
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestExporterOutcomes(t *testing.T) {
	e := NewExporter(map[string]Collector{
		"good":   fake{name: "good"},
		"broken": fake{name: "broken", err: errors.New("device gone")},
		"empty":  fake{name: "empty", err: fmt.Errorf("no FPGA here: %w", ErrNoData)},
		"slow":   fake{name: "slow", sleep: 300 * time.Millisecond},
	}, 100*time.Millisecond, discard())
	expected := `
# HELP gpuledger_exporter_collector_success Whether the collector succeeded in the last scrape (1) or failed (0).
# TYPE gpuledger_exporter_collector_success gauge
gpuledger_exporter_collector_success{collector="broken"} 0
gpuledger_exporter_collector_success{collector="empty"} 1
gpuledger_exporter_collector_success{collector="good"} 1
gpuledger_exporter_collector_success{collector="slow"} 0
# HELP test_value A test value.
# TYPE test_value gauge
test_value{source="empty"} 1
test_value{source="good"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected), "gpuledger_exporter_collector_success", "test_value"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(e, "gpuledger_exporter_collector_duration_seconds"); n != 4 {
		t.Errorf("%d duration series, want 4", n)
	}
}

func TestExporterNilLogger(t *testing.T) {
	e := NewExporter(map[string]Collector{"broken": fake{name: "broken", err: errors.New("gone")}}, 0, nil)
	if n := testutil.CollectAndCount(e, "gpuledger_exporter_collector_success"); n != 1 {
		t.Errorf("%d success series", n)
	}
}

func TestExporterAt(t *testing.T) {
	when := time.Date(2026, 11, 2, 11, 7, 0, 0, time.UTC)
	e := NewExporter(map[string]Collector{"sim": pinnable{fake{name: "sim"}}}, 0, discard())
	pinned, err := e.At(when)
	if err != nil {
		t.Fatal(err)
	}
	expected := fmt.Sprintf(`
# HELP test_value A test value.
# TYPE test_value gauge
test_value{source="sim"} %d
`, when.Unix())
	if err := testutil.CollectAndCompare(pinned, strings.NewReader(expected), "test_value"); err != nil {
		t.Error(err)
	}
	if _, err := e.At(time.Time{}); err == nil || !strings.Contains(err.Error(), "collector sim: no such instant") {
		t.Errorf("At with a failing collector: %v", err)
	}
	mixed := NewExporter(map[string]Collector{"sim": pinnable{fake{name: "sim"}}, "nvml": fake{name: "nvml"}}, 0, discard())
	if _, err := mixed.At(when); !errors.Is(err, ErrNotPinnable) {
		t.Errorf("At with a real-device collector: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	built := 0
	ok := func(*slog.Logger) (Collector, error) { built++; return fake{}, nil }
	r.Register("sim", true, ok)
	r.Register("nvml", true, ok)
	r.Register("dcgm", false, ok)
	r.Register("broken", false, func(*slog.Logger) (Collector, error) { return nil, errors.New("no library") })
	if got := r.Names(); !slices.Equal(got, []string{"broken", "dcgm", "nvml", "sim"}) {
		t.Errorf("Names = %v", got)
	}
	if got := r.Defaults(); !slices.Equal(got, []string{"nvml", "sim"}) {
		t.Errorf("Defaults = %v", got)
	}
	cases := []struct {
		names []string
		want  []string
		err   string
	}{
		{nil, []string{"nvml", "sim"}, ""},
		{[]string{" dcgm "}, []string{"dcgm"}, ""},
		{[]string{"sim", "gpu"}, nil, `unknown collector "gpu" (known: broken, dcgm, nvml, sim)`},
		{[]string{"broken"}, nil, "collector broken: no library"},
	}
	for _, c := range cases {
		got, err := r.Build(c.names, discard())
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("Build(%v) error %v, want %q", c.names, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Build(%v): %v", c.names, err)
			continue
		}
		var names []string
		for n := range got {
			names = append(names, n)
		}
		slices.Sort(names)
		if !slices.Equal(names, c.want) {
			t.Errorf("Build(%v) = %v, want %v", c.names, names, c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	r.Register("sim", false, ok)
}
