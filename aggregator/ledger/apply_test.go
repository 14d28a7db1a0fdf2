package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

func TestApplyWindowHourlyRows(t *testing.T) {
	s, _ := newStore(t, Options{})
	a := func(start, end int64, opts ...ivOpt) observe.Interval { return iv("a", start, end, opts...) }
	b := func(start, end int64, opts ...ivOpt) observe.Interval { return iv("b", start, end, opts...) }
	cases := []struct {
		name      string
		windows   []observe.Window
		want      []string // hour (from 08:00) project user class model profile site alloc dev used idle energy fpga
		watermark int64
	}{{
		name:      "an interval across an hour boundary",
		windows:   []observe.Window{win(at(1, 10), at(1, 15), a(at(0, 50), at(1, 10)))},
		want:      []string{"00:00 cms bob gpu A100 - - 600000 600 0 0 0 0", "01:00 cms bob gpu A100 - - 600000 600 0 0 0 0"},
		watermark: at(1, 15),
	}, {
		name:      "a MIG 1g.10gb slice weighs 143",
		windows:   []observe.Window{win(at(0, 30), at(0, 35), a(at(0, 0), at(0, 30), mig("1g.10gb", 143)))},
		want:      []string{"00:00 cms bob mig A100 1g.10gb - 257400 1800 0 0 0 0"},
		watermark: at(0, 35),
	}, {
		name:      "a shared quarter weighs 250",
		windows:   []observe.Window{win(at(1, 0), at(1, 5), a(at(0, 0), at(1, 0), shared(250)))},
		want:      []string{"00:00 cms bob shared T4 - - 900000 3600 0 0 0 0"},
		watermark: at(1, 5),
	}, {
		name:      "two GPUs offloaded to a site weigh 2000",
		windows:   []observe.Window{win(at(0, 45), at(0, 50), a(at(0, 15), at(0, 45), offload(2)))},
		want:      []string{"00:00 cms bob offload A100-PCIE - INFN-CNAF 3600000 3600 0 0 0 0"},
		watermark: at(0, 50),
	}, {
		name:      "an FPGA counts FPGA seconds, not GPU time",
		windows:   []observe.Window{win(at(0, 30), at(0, 35), a(at(0, 0), at(0, 30), fpga()))},
		want:      []string{"00:00 cms bob fpga U55C - - 0 0 0 0 0 1800"},
		watermark: at(0, 35),
	}, {
		name:      "an open interval runs to the watermark",
		windows:   []observe.Window{win(at(0, 0), at(0, 5), a(at(0, 2), 0, seen(at(0, 5))))},
		want:      []string{"00:00 cms bob gpu A100 - - 180000 180 0 0 0 0"},
		watermark: at(0, 5),
	}, {
		name: "an open interval closed by a later window",
		windows: []observe.Window{
			win(at(0, 0), at(0, 5), a(at(0, 2), 0, seen(at(0, 5)))),
			win(at(0, 5), at(0, 10), a(at(0, 2), 0, seen(at(0, 10)))),
			win(at(0, 10), at(0, 15), a(at(0, 2), at(0, 12))),
		},
		want:      []string{"00:00 cms bob gpu A100 - - 600000 600 0 0 0 0"},
		watermark: at(0, 15),
	}, {
		name: "an open interval over an hour boundary, closed in the next hour",
		windows: []observe.Window{
			win(at(0, 55), at(1, 0), a(at(0, 50), 0, seen(at(1, 0)))),
			win(at(1, 0), at(1, 5), a(at(0, 50), 0, seen(at(1, 5)))),
			win(at(1, 5), at(1, 10), a(at(0, 50), at(1, 7))),
		},
		want:      []string{"00:00 cms bob gpu A100 - - 600000 600 0 0 0 0", "01:00 cms bob gpu A100 - - 420000 420 0 0 0 0"},
		watermark: at(1, 10),
	}, {
		name: "an inferred end replaced by an earlier exact end",
		windows: []observe.Window{
			win(at(1, 0), at(1, 5), a(at(0, 30), at(1, 3), inferred(at(1, 3)))),
			win(at(1, 5), at(1, 10), a(at(0, 30), at(1, 1))),
		},
		want:      []string{"00:00 cms bob gpu A100 - - 1800000 1800 0 0 0 0", "01:00 cms bob gpu A100 - - 60000 60 0 0 0 0"},
		watermark: at(1, 10),
	}, {
		name: "an inferred end reopened when the allocation is seen again",
		windows: []observe.Window{
			win(at(0, 0), at(0, 5), a(at(0, 0), at(0, 3), inferred(at(0, 3)))),
			win(at(0, 5), at(0, 10), a(at(0, 0), 0, seen(at(0, 10)))),
		},
		want:      []string{"00:00 cms bob gpu A100 - - 600000 600 0 0 0 0"},
		watermark: at(0, 10),
	}, {
		name: "late data for an earlier hour",
		windows: []observe.Window{
			win(at(2, 0), at(2, 5), a(at(2, 0), 0, seen(at(2, 5)))),
			win(at(0, 0), at(0, 5), b(at(0, 1), at(0, 4), project("lhcb", "carol"))),
		},
		want:      []string{"00:00 lhcb carol gpu A100 - - 180000 180 0 0 0 0", "02:00 cms bob gpu A100 - - 300000 300 0 0 0 0"},
		watermark: at(2, 5),
	}, {
		name: "a window after a gap extends open intervals over the gap",
		windows: []observe.Window{
			win(at(0, 0), at(0, 5), a(at(0, 0), 0, seen(at(0, 5)))),
			win(at(2, 0), at(2, 5), b(at(2, 0), 0, seen(at(2, 5)), project("lhcb", "carol"))),
		},
		want: []string{
			"00:00 cms bob gpu A100 - - 3600000 3600 0 0 0 0",
			"01:00 cms bob gpu A100 - - 3600000 3600 0 0 0 0",
			"02:00 cms bob gpu A100 - - 300000 300 0 0 0 0",
			"02:00 lhcb carol gpu A100 - - 300000 300 0 0 0 0",
		},
		watermark: at(2, 5),
	}, {
		name: "an older view replayed does not undo a newer one",
		windows: []observe.Window{
			win(at(0, 0), at(0, 5), a(at(0, 0), 0, seen(at(0, 5)))),
			win(at(0, 5), at(0, 10), a(at(0, 0), at(0, 7))),
			win(at(0, 0), at(0, 5), a(at(0, 0), 0, seen(at(0, 5)))),
		},
		want:      []string{"00:00 cms bob gpu A100 - - 420000 420 0 0 0 0"},
		watermark: at(0, 10),
	}, {
		name: "usage, idle and energy; an FPGA's usage is not GPU time",
		windows: []observe.Window{func() observe.Window {
			w := win(at(0, 0), at(0, 5), a(at(0, 0), 0, seen(at(0, 5))), b(at(0, 0), 0, fpga(), seen(at(0, 5))))
			w.Usage = []observe.Usage{
				{AllocKey: w.Intervals[0].AllocKey, UsedMilliGPUSeconds: 150000, IdleMilliGPUSeconds: 30000, EnergyMillijoules: 45000000},
				{AllocKey: w.Intervals[1].AllocKey, UsedMilliGPUSeconds: 5, IdleMilliGPUSeconds: 5, EnergyMillijoules: 7000},
			}
			return w
		}()},
		want: []string{
			"00:00 cms bob fpga U55C - - 0 0 0 0 7000 300",
			"00:00 cms bob gpu A100 - - 300000 300 150000 30000 45000000 0",
		},
		watermark: at(0, 5),
	}}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cluster := fmt.Sprintf("case-%d", i)
			for _, w := range c.windows {
				w.Cluster = cluster
				if err := s.ApplyWindow(context.Background(), w); err != nil {
					t.Fatal(err)
				}
			}
			sameRows(t, "hourly rows", hourlyRows(t, s, cluster, "ledger_hourly"), c.want)
			wm, ok, err := s.Watermark(context.Background(), cluster)
			if err != nil || !ok || wm.Unix() != c.watermark {
				t.Errorf("watermark %v %v %v, want %d", wm, ok, err, c.watermark)
			}
		})
	}
	checkRollups(t, s)
}

func TestApplyWindowCapacity(t *testing.T) {
	s, _ := newStore(t, Options{})
	w := win(at(0, 0), at(0, 5),
		iv("a", at(0, 0), 0, seen(at(0, 5))),
		iv("m", at(0, 0), 0, mig("3g.40gb", 500), seen(at(0, 5))),
		iv("f", at(0, 0), at(0, 2), fpga()),
		iv("o", at(0, 0), 0, offload(1), seen(at(0, 5))))
	w.Capacity = []observe.Capacity{
		{Node: "n0", Device: "GPU-a", Class: "gpu", Model: "A100", Seconds: 300},
		{Node: "n0", Device: "GPU-m", Class: "gpu", Model: "A100", Seconds: 300},
		{Node: "n0", Device: "GPU-idle", Class: "gpu", Model: "A100", Seconds: 240},
		{Node: "n0", Device: "0000:3b:00.1", Class: "fpga", Model: "U55C", Seconds: 300},
	}
	w.Energy = []observe.Energy{
		{Node: "n0", GPUUUID: "GPU-a", Model: "A100", EnergyMillijoules: 60000000},
		{Node: "n0", GPUUUID: "GPU-idle", Model: "A100", EnergyMillijoules: 12000000},
	}
	apply(t, s, w)
	rows, err := s.pool.Query(context.Background(), `SELECT class, model, device_seconds, capacity_milli_gpu_seconds,
		allocated_milli_gpu_seconds, unallocated_milli_gpu_seconds, allocated_fpga_seconds, unallocated_fpga_seconds,
		energy_millijoules FROM capacity_hourly ORDER BY class, model`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var class, model string
		var v [7]int64
		if err := rows.Scan(&class, &model, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(class, " ", model, " ", v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// A100: 840 device-seconds = 840000 milli-GPU-s of capacity; allocated
	// 300 × 1000 + 300 × 500; the offloaded GPU is not local capacity.
	// U55C: 300 card-seconds, 120 allocated.
	sameRows(t, "capacity rows", got, []string{
		"fpga U55C [300 0 0 0 120 180 0]",
		"gpu A100 [840 840000 450000 390000 0 0 72000000]",
	})
}

func TestApplyWindowIdempotent(t *testing.T) {
	s, _ := newStore(t, Options{})
	w1 := win(at(0, 0), at(0, 5), iv("a", at(0, 0), 0, seen(at(0, 5))), iv("b", at(0, 1), at(0, 3)))
	w1.Usage = []observe.Usage{{AllocKey: w1.Intervals[0].AllocKey, UsedMilliGPUSeconds: 1, IdleMilliGPUSeconds: 2, EnergyMillijoules: 3}}
	w1.Energy = []observe.Energy{{Node: "n0", GPUUUID: "GPU-a", Model: "A100", EnergyMillijoules: 9}}
	w1.Capacity = []observe.Capacity{{Node: "n0", Device: "GPU-a", Class: "gpu", Model: "A100", Seconds: 300}}
	w2 := win(at(0, 5), at(0, 10), iv("a", at(0, 0), at(0, 8)))
	apply(t, s, w1, w2)
	open, err := s.OpenIntervals(context.Background(), testCluster)
	if err != nil || len(open) != 0 {
		t.Errorf("OpenIntervals after a's end: %v, %v", open, err)
	}
	apply(t, s, w1)
	open, err = s.OpenIntervals(context.Background(), testCluster)
	if err != nil || len(open) != 0 {
		t.Errorf("an older view reopened an interval: %v, %v", open, err)
	}
	before := dump(t, s)
	if len(before["intervals"]) != 2 || len(before["ledger_hourly"]) == 0 {
		t.Fatalf("nothing written: %v", before)
	}
	apply(t, s, w2) // the same window again
	if d := diffDumps(before, dump(t, s)); d != "" {
		t.Errorf("re-applying the last window changed the ledger:\n%s", d)
	}
	apply(t, s, w1, w2) // and replaying both, in order
	if d := diffDumps(before, dump(t, s)); d != "" {
		t.Errorf("replaying the windows changed the ledger:\n%s", d)
	}

	// A second database fed the same windows holds the same ledger rows.
	s2, _ := newStore(t, Options{})
	apply(t, s2, w1, w2)
	for _, tab := range []string{"ledger_hourly", "ledger_daily", "ledger_monthly"} {
		sameRows(t, tab+" of a second database", hourlyRows(t, s2, testCluster, tab), hourlyRows(t, s, testCluster, tab))
	}
}

func TestApplyWindowRejects(t *testing.T) {
	s, _ := newStore(t, Options{})
	good := iv("a", at(0, 0), 0, seen(at(0, 5)))
	withUsage := func(w observe.Window, u ...observe.Usage) observe.Window { w.Usage = u; return w }
	cases := []struct {
		name string
		w    observe.Window
		want error
		msg  string
	}{
		{"no cluster", observe.Window{From: at(0, 0), To: at(0, 5)}, ErrBadWindow, "cluster"},
		{"empty window", win(at(0, 5), at(0, 5)), ErrBadWindow, "0 < from < to"},
		{"usage window across an hour", withUsage(win(at(0, 55), at(1, 5), good),
			observe.Usage{AllocKey: good.AllocKey}), ErrBadWindow, "one UTC hour"},
		{"unknown class", win(at(0, 0), at(0, 5), iv("a", at(0, 0), 0, func(x *observe.Interval) { x.Class = "tpu" })), ErrBadWindow, "class"},
		{"end before start", win(at(0, 0), at(0, 5), iv("a", at(0, 3), at(0, 1))), ErrBadWindow, "before start"},
		{"duplicate interval", win(at(0, 0), at(0, 5), good, good), ErrBadWindow, "twice"},
		{"usage of an unknown allocation", withUsage(win(at(0, 0), at(0, 5)),
			observe.Usage{AllocKey: good.AllocKey}), ErrBadWindow, "not among"},
		{"NUL in a project", win(at(0, 0), at(0, 5), iv("a", at(0, 0), 0, project("a\x00b", "u"))), ErrBadWindow, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.ApplyWindow(context.Background(), c.w)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err = %v, want %v mentioning %q", err, c.want, c.msg)
			}
		})
	}
	// A window overlapping a stored one with other bounds would count
	// seconds twice.
	apply(t, s, withUsage(win(at(0, 0), at(0, 10), good), observe.Usage{AllocKey: good.AllocKey, UsedMilliGPUSeconds: 5}))
	before := dump(t, s)
	for _, w := range []observe.Window{
		withUsage(win(at(0, 5), at(0, 10), good), observe.Usage{AllocKey: good.AllocKey}),
		withUsage(win(at(0, 0), at(0, 5), good), observe.Usage{AllocKey: good.AllocKey}),
	} {
		if err := s.ApplyWindow(context.Background(), w); !errors.Is(err, ErrWindowOverlap) {
			t.Errorf("[%d, %d): err = %v, want ErrWindowOverlap", w.From-t0, w.To-t0, err)
		}
	}
	if d := diffDumps(before, dump(t, s)); d != "" {
		t.Errorf("a refused window changed the ledger:\n%s", d)
	}
}
