package backfill

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

func TestFormatting(t *testing.T) {
	ts := []struct {
		ms   int64
		want string
	}{{1_793_606_400_000, "1793606400"}, {1_793_606_400_500, "1793606400.500"}, {1_793_606_400_007, "1793606400.007"}, {-1, "-1.999"}}
	for _, c := range ts {
		if got := string(appendTimestamp(nil, c.ms)); got != c.want {
			t.Errorf("timestamp %d: %s, want %s", c.ms, got, c.want)
		}
	}
	vs := []struct {
		v    float64
		want string
	}{{1, "1"}, {0.143, "0.143"}, {1.7936082e+09, "1.7936082e+09"}, {math.NaN(), "NaN"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}}
	for _, c := range vs {
		if got := string(appendValue(nil, c.v)); got != c.want {
			t.Errorf("value %v: %s, want %s", c.v, got, c.want)
		}
	}
	m := &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("node"), Value: proto.String("n1")},
		{Name: proto.String("pod"), Value: proto.String("a\"b\\c\nd")}}, Gauge: &dto.Gauge{Value: proto.Float64(2)}}
	extra := []label{{"cluster", "c"}, {"instance", "n1"}, {"job", "j"}}
	got := string(appendSample(nil, "x", m, extra, []byte("10")))
	if want := `x{node="n1",pod="a\"b\\c\nd",cluster="c",instance="n1",job="j"} 2 10` + "\n"; got != want {
		t.Errorf("sample line\n got %s\nwant %s", got, want)
	}
	// A series without a node label gets the target's.
	m = &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(3)}}
	if got, want := string(appendSample(nil, "y_total", m, extra, []byte("10"))), `y_total{cluster="c",instance="n1",job="j",node="n1"} 3 10`+"\n"; got != want {
		t.Errorf("sample line\n got %s\nwant %s", got, want)
	}
}

func TestWriteErrors(t *testing.T) {
	s, err := scenario.Load("../../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	at := func(v string) time.Time { tm, _ := time.Parse(time.RFC3339, v); return tm }
	cases := []struct {
		name string
		opts Options
		err  string
	}{
		{"before the scenario", Options{From: at("2026-11-02T07:00:00Z")}, "not within the scenario"},
		{"after the scenario", Options{To: at("2026-11-02T15:00:00Z")}, "not within the scenario"},
		{"empty range", Options{From: at("2026-11-02T09:00:00Z"), To: at("2026-11-02T09:00:00Z")}, "empty range"},
		{"unknown node", Options{Nodes: []string{"gpu-99"}}, "unknown node"},
		{"bad interval", Options{Interval: time.Microsecond}, "whole number of milliseconds"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if _, err := Write(context.Background(), &out, s, c.opts); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
		if out.Len() != 0 {
			t.Errorf("%s: wrote %d bytes", c.name, out.Len())
		}
	}
	if _, err := Write(context.Background(), &bytes.Buffer{}, s, Options{Nodes: []string{"gpu-99"}}); !errors.Is(err, sim.ErrUnknownNode) {
		t.Errorf("unknown node: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, &bytes.Buffer{}, s, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// The same scenario and options give the same bytes.
func TestWriteDeterministic(t *testing.T) {
	s, err := scenario.Load("../../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{From: s.Start.Add(2 * time.Hour), To: s.Start.Add(150 * time.Minute), Interval: time.Minute, TempDir: t.TempDir()}
	var a, b bytes.Buffer
	sa, err := Write(context.Background(), &a, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(context.Background(), &b, s, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two runs differ")
	}
	// At 10:00 a100-mig-01 is restarting.
	if sa.Instants != 30 || sa.Scrapes != 4*30-1 || sa.Failed != 1 || sa.Bytes != int64(a.Len()) || sa.Families != 25 {
		t.Errorf("stats %+v (output %d bytes)", sa, a.Len())
	}
}
