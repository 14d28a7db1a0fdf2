package truth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/tabular"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// The allocations of testdata/scenarios/small.yaml, with weights worked out
// by hand (DESIGN.md: a MIG slice weighs max(compute, memory) share, half-up
// to a milli-GPU):
//
//	pod             project      user     class    weight devs  interval
//	jupyter-alice   jupyterhub   alice    mig      143    1     07:30 → open   A100-80GB 1g.10gb: max(1/7, 1/8) = 142.86 → 143
//	cms-train-7f9c  cms-gpu      bob      gpu      1000   1     08:20 → 11:05:30
//	cms-train-8a01  cms-gpu      carol    gpu      1000   1     11:10 → 16:00  (past the scenario's end, 14:00)
//	ml-infn-ft-0    ml-infn-gpu  trainer  mig      500    1     09:00 → 12:30  A100-80GB 3g.40gb: max(3/7, 4/8) = 500
//	lhcb-reco-1     lhcb-batch   dave     mig      250    1     08:00 → 10:00  A30 1g.6gb: 1/4
//	lhcb-reco-1     lhcb-batch   dave     mig      500    1     08:00 → 10:00  A30 2g.12gb: 2/4
//	jupyter-erin    jupyterhub   erin     shared   250    1     09:15 → 13:45  T4 with 4 replicas: 1/4
//	jupyter-frank   jupyterhub   frank    shared   250    1     10:00 → open
//	fpga-hls-3      ml-infn      grace    fpga     -      1     08:30 → 09:30  FPGA seconds only
//	offload-sim-42  ml-infn-gpu  heidi    offload  2000   2     10:00 → 12:00  2 GPUs at INFN-CNAF
//
// All on 2026-11-02, UTC.

func smallAllocations(t *testing.T) []scenario.Allocation {
	t.Helper()
	s, err := scenario.Load("../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	return allocs
}

func at(h, m, s int) time.Time { return time.Date(2026, 11, 2, h, m, s, 0, time.UTC) }

// r builds an expected row: keys joined by "|", allocated milli-GPU-s,
// device-s, FPGA-s.
func r(keys string, milli, dev, fpga int64) Row {
	return Row{Keys: strings.Split(keys, "|"), AllocatedMilliGPUSeconds: milli, DeviceSeconds: dev, FPGASeconds: fpga}
}

func TestComputeSmall(t *testing.T) {
	allocs := smallAllocations(t)
	cases := []struct {
		name     string
		from, to time.Time
		groupBy  []string
		want     []Row
	}{
		{
			// The whole scenario, 08:00 → 14:00 (21600 s).
			name: "by project, whole scenario", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: []string{KeyProject},
			want: []Row{
				// bob 08:20 → 11:05:30 = 9930 s × 1000 = 9,930,000
				// carol 11:10 → 14:00 (clipped) = 10200 s × 1000 = 10,200,000
				r("cms-gpu", 9930000+10200000, 9930+10200, 0),
				// alice 08:00 → 14:00 (open, clipped at both edges) = 21600 s × 143 = 3,088,800
				// erin 09:15 → 13:45 = 16200 s × 250 = 4,050,000
				// frank 10:00 → 14:00 (open) = 14400 s × 250 = 3,600,000
				r("jupyterhub", 3088800+4050000+3600000, 21600+16200+14400, 0),
				// dave 08:00 → 10:00 = 7200 s × (250 + 500) = 5,400,000; two devices
				r("lhcb-batch", 7200*250+7200*500, 2*7200, 0),
				// grace: one FPGA 08:30 → 09:30, no GPU time
				r("ml-infn", 0, 0, 3600),
				// trainer 09:00 → 12:30 = 12600 s × 500 = 6,300,000
				// heidi 10:00 → 12:00 = 7200 s × 2000 = 14,400,000; 2 devices
				r("ml-infn-gpu", 6300000+14400000, 12600+2*7200, 0),
			},
		},
		{
			name: "by user, whole scenario", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: []string{KeyUser},
			want: []Row{
				r("alice", 21600*143, 21600, 0),
				r("bob", 9930*1000, 9930, 0),
				r("carol", 10200*1000, 10200, 0),
				r("dave", 7200*750, 14400, 0),
				r("erin", 16200*250, 16200, 0),
				r("frank", 14400*250, 14400, 0),
				r("grace", 0, 0, 3600),
				r("heidi", 7200*2000, 14400, 0),
				r("trainer", 12600*500, 12600, 0), // service account: no annotation or user label
			},
		},
		{
			name: "by resource, whole scenario", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: []string{KeyResource},
			want: []Row{
				r("fpga", 0, 0, 3600),
				r("gpu", 9930000+10200000, 9930+10200, 0),
				// alice 3,088,800 + trainer 6,300,000 + dave 5,400,000
				r("mig", 3088800+6300000+5400000, 21600+12600+14400, 0),
				r("offload", 14400000, 14400, 0),
				// erin 4,050,000 + frank 3,600,000
				r("shared", 4050000+3600000, 16200+14400, 0),
			},
		},
		{
			name: "by site, whole scenario", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: []string{KeySite},
			want: []Row{
				// Local nodes have no site: everything but the offload.
				// 20,130,000 + 10,738,800 + 5,400,000 + 6,300,000 = 42,568,800
				r("", 20130000+10738800+5400000+6300000, 20130+52200+14400+12600, 3600),
				r("INFN-CNAF", 14400000, 14400, 0),
			},
		},
		{
			name: "by model, whole scenario", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: []string{KeyModel},
			want: []Row{
				r("Alveo U55C", 0, 0, 3600),
				// alice 3,088,800 + bob 9,930,000 + carol 10,200,000 + trainer 6,300,000
				r("NVIDIA A100-PCIE-40GB", 14400000, 14400, 0), // the remote site's model
				r("NVIDIA A100-SXM4-80GB", 3088800+9930000+10200000+6300000, 21600+9930+10200+12600, 0),
				r("NVIDIA A30", 5400000, 14400, 0),
				r("Tesla T4", 7650000, 30600, 0),
			},
		},
		{
			// 09:00 → 10:00 clips most allocations on both edges.
			name: "by project, one hour clipped at both edges", from: at(9, 0, 0), to: at(10, 0, 0), groupBy: []string{KeyProject},
			want: []Row{
				r("cms-gpu", 3600*1000, 3600, 0), // bob
				// alice 3600 × 143 = 514,800; erin 09:15 → 10:00 = 2700 × 250 = 675,000;
				// frank starts at 10:00, the window's (excluded) end.
				r("jupyterhub", 514800+675000, 3600+2700, 0),
				r("lhcb-batch", 3600*750, 7200, 0),  // dave's pod ends at 10:00
				r("ml-infn", 0, 0, 1800),            // grace 09:00 → 09:30
				r("ml-infn-gpu", 3600*500, 3600, 0), // trainer; heidi starts at 10:00
			},
		},
		{
			// 11:05 → 11:10: bob's pod ends 30 s in, carol's starts at the end.
			name: "by resource, five minutes", from: at(11, 5, 0), to: at(11, 10, 0), groupBy: []string{KeyResource},
			want: []Row{
				r("gpu", 30*1000, 30, 0),
				r("mig", 300*143+300*500, 600, 0),    // alice, trainer
				r("offload", 300*2000, 600, 0),       // heidi's 2 GPUs
				r("shared", 300*250+300*250, 600, 0), // erin, frank
			},
		},
		{
			// 13:00 → 15:00 runs past the scenario's end (14:00): open
			// allocations run to the window's end, carol's pod to 15:00.
			name: "by user, open past the end", from: at(13, 0, 0), to: at(15, 0, 0), groupBy: []string{KeyUser},
			want: []Row{
				r("alice", 7200*143, 7200, 0),
				r("carol", 7200*1000, 7200, 0),
				r("erin", 2700*250, 2700, 0), // to 13:45
				r("frank", 7200*250, 7200, 0),
			},
		},
		{
			name: "nothing before the first pod", from: at(5, 0, 0), to: at(7, 30, 0), groupBy: []string{KeyProject},
			want: []Row{},
		},
		{
			name: "two keys", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: []string{KeyProject, KeyUser},
			want: []Row{
				r("cms-gpu|bob", 9930000, 9930, 0),
				r("cms-gpu|carol", 10200000, 10200, 0),
				r("jupyterhub|alice", 3088800, 21600, 0),
				r("jupyterhub|erin", 4050000, 16200, 0),
				r("jupyterhub|frank", 3600000, 14400, 0),
				r("lhcb-batch|dave", 5400000, 14400, 0),
				r("ml-infn|grace", 0, 0, 3600),
				r("ml-infn-gpu|heidi", 14400000, 14400, 0),
				r("ml-infn-gpu|trainer", 6300000, 12600, 0),
			},
		},
		{
			name: "queue, namespace and profile", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: []string{KeyQueue, KeyNamespace, KeyProfile},
			want: []Row{
				r("|hub|", 4050000+3600000, 30600, 0),         // erin, frank: shared, no profile
				r("|hub|1g.10gb", 3088800, 21600, 0),          // alice
				r("|lhcb-batch|1g.6gb", 1800000, 7200, 0),     // dave
				r("|lhcb-batch|2g.12gb", 3600000, 7200, 0),    // dave
				r("|ml-infn|", 0, 0, 3600),                    // grace
				r("cms-gpu|cms-ml|", 20130000, 20130, 0),      // bob, carol
				r("ml-infn-gpu|ml-infn|", 14400000, 14400, 0), // heidi
				r("ml-infn-gpu|ml-infn|3g.40gb", 6300000, 12600, 0),
			},
		},
		{
			name: "no keys: one total", from: at(8, 0, 0), to: at(14, 0, 0), groupBy: nil,
			want: []Row{{Keys: []string{}, AllocatedMilliGPUSeconds: 56968800, DeviceSeconds: 113730, FPGASeconds: 3600}},
		},
		{
			name: "node and pod", from: at(9, 0, 0), to: at(9, 30, 0), groupBy: []string{KeyNode, KeyPod},
			want: []Row{
				r("a100-mig-01|cms-ml/cms-train-7f9c", 1800*1000, 1800, 0),
				r("a100-mig-01|hub/jupyter-alice", 1800*143, 1800, 0),
				r("a100-mig-01|ml-infn/ml-infn-ft-0", 1800*500, 1800, 0),
				r("a30-01|lhcb-batch/lhcb-reco-1", 1800*750, 3600, 0),
				r("t4-01|hub/jupyter-erin", 900*250, 900, 0),
				r("t4-01|ml-infn/fpga-hls-3", 0, 0, 1800),
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Compute(allocs, c.from, c.to, c.groupBy)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Rows) != len(c.want) {
				t.Fatalf("got %d rows, want %d:\n%v", len(rep.Rows), len(c.want), rep.Rows)
			}
			for i, w := range c.want {
				g := rep.Rows[i]
				if strings.Join(g.Keys, "|") != strings.Join(w.Keys, "|") || len(g.Keys) != len(c.groupBy) ||
					g.AllocatedMilliGPUSeconds != w.AllocatedMilliGPUSeconds || g.DeviceSeconds != w.DeviceSeconds || g.FPGASeconds != w.FPGASeconds {
					t.Errorf("row %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// TestGroupingsAgree checks that every grouping of one window sums to the
// same totals: no allocation is lost or counted twice by a key.
func TestGroupingsAgree(t *testing.T) {
	allocs := smallAllocations(t)
	for _, k := range Keys() {
		rep, err := Compute(allocs, at(6, 0, 0), at(20, 0, 0), []string{k})
		if err != nil {
			t.Fatal(err)
		}
		var m, d, f int64
		for _, row := range rep.Rows {
			m, d, f = m+row.AllocatedMilliGPUSeconds, d+row.DeviceSeconds, f+row.FPGASeconds
		}
		// 06:00 → 20:00: alice 07:30 → 20:00 = 45000 s × 143; bob 9930 s; carol 11:10 → 16:00 = 17400 s;
		// trainer 12600 × 500; dave 7200 × 750; erin 16200 × 250; frank 10:00 → 20:00 = 36000 × 250;
		// heidi 7200 × 2000.
		wantM := int64(45000*143 + 9930*1000 + 17400*1000 + 12600*500 + 7200*750 + 16200*250 + 36000*250 + 7200*2000)
		wantD := int64(45000 + 9930 + 17400 + 12600 + 2*7200 + 16200 + 36000 + 2*7200)
		if m != wantM || d != wantD || f != 3600 {
			t.Errorf("group by %s: totals %d, %d, %d; want %d, %d, 3600", k, m, d, f, wantM, wantD)
		}
	}
}

func TestComputeErrors(t *testing.T) {
	allocs := smallAllocations(t)
	cases := []struct {
		name     string
		from, to time.Time
		groupBy  []string
		is       error
		msg      string
	}{
		{"unknown key", at(8, 0, 0), at(9, 0, 0), []string{"project", "team"}, ErrUnknownKey, `unknown group-by key "team"`},
		{"key twice", at(8, 0, 0), at(9, 0, 0), []string{"user", "user"}, nil, `group-by key "user" given twice`},
		{"empty window", at(9, 0, 0), at(9, 0, 0), nil, ErrWindow, "is not after from"},
		{"inverted window", at(10, 0, 0), at(9, 0, 0), nil, ErrWindow, "is not after from"},
		{"no from", time.Time{}, at(9, 0, 0), nil, ErrWindow, "missing from or to"},
		{"fractional second", at(8, 0, 0).Add(time.Millisecond), at(9, 0, 0), nil, ErrWindow, "whole seconds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compute(allocs, c.from, c.to, c.groupBy)
			if err == nil || !strings.Contains(err.Error(), c.msg) || (c.is != nil && !errors.Is(err, c.is)) {
				t.Errorf("Compute = %v, want %q (%v)", err, c.msg, c.is)
			}
		})
	}
	huge := []scenario.Allocation{
		{Pod: &scenario.Pod{Name: "p", Namespace: "n"}, Class: accounting.ClassOffload, WeightMilli: 1 << 50, Devices: 1 << 40,
			Start: time.Unix(0, 0), End: time.Unix(1<<20, 0)},
	}
	if _, err := Compute(huge, time.Unix(0, 0), time.Unix(1<<21, 0), nil); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflowing sum: %v, want ErrOverflow", err)
	}
}

func TestParseGroupBy(t *testing.T) {
	cases := []struct {
		in   string
		want string
		err  bool
	}{
		{"project", "project", false},
		{"project, user ,namespace", "project|user|namespace", false},
		{"resource,model,site,node,pod,queue,profile", "resource|model|site|node|pod|queue|profile", false},
		{"", "", false},
		{"  ", "", false},
		{"Project", "", true},
		{"project,", "", true},
		{"project,project", "", true},
		{"gpu", "", true},
	}
	for _, c := range cases {
		got, err := ParseGroupBy(c.in)
		if (err != nil) != c.err || strings.Join(got, "|") != c.want {
			t.Errorf("ParseGroupBy(%q) = %q, %v; want %q (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

func TestReportTable(t *testing.T) {
	rep, err := Compute(smallAllocations(t), at(8, 0, 0), at(14, 0, 0), []string{KeyProject})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := tabular.NewCSV(&b, rep.Columns())
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(w); err != nil {
		t.Fatal(err)
	}
	// 20,130,000 / 3,600,000 = 5.5916666… → 5.591667; 10,738,800 / 3,600,000 = 2.983 exactly.
	want := "project,allocated_gpu_hours,device_hours,fpga_hours,allocated_milli_gpu_seconds\r\n" +
		"cms-gpu,5.591667,5.591667,0.000000,20130000\r\n" +
		"jupyterhub,2.983000,14.500000,0.000000,10738800\r\n" +
		"lhcb-batch,1.500000,4.000000,0.000000,5400000\r\n" +
		"ml-infn,0.000000,0.000000,1.000000,0\r\n" +
		"ml-infn-gpu,5.750000,7.500000,0.000000,20700000\r\n"
	if b.String() != want {
		t.Errorf("CSV:\n%s\nwant\n%s", b.String(), want)
	}
}
