package trace

import (
	"encoding/csv"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
)

// csvRows reads a CSV file into maps keyed by column, with nothing of the
// importer's code, for arithmetic the tests do on their own.
func csvRows(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		rows = append(rows, m)
	}
	return rows
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// overlap is the length of [s, e) ∩ [ws, we).
func overlap(s, e, ws, we int64) int64 { return max(0, min(e, we)-max(s, ws)) }

const day = 86400

func TestRealAlibaba(t *testing.T) {
	podsPath := needTrace(t, AlibabaPodsFile)
	nodesPath := needTrace(t, AlibabaNodesFile)
	orgsPath := needTrace(t, OrgsFile)
	pods := mustLoad(t, LoadAlibabaPods, podsPath)
	nodes := mustLoad(t, LoadAlibabaNodes, nodesPath)
	orgs := mustLoad(t, LoadOrgs, orgsPath)
	if len(pods) != 8152 || len(nodes) != 1213 || len(orgs) != 84 {
		t.Fatalf("read %d pods, %d nodes, %d organisations; the README says 8152, 1213, 84", len(pods), len(nodes), len(orgs))
	}
	rows := csvRows(t, podsPath)

	for _, w := range []struct{ from, dur int64 }{
		{148 * day, day},     // the busiest day
		{142 * day, 7 * day}, // a week
		{0, 150 * day},       // the whole trace
		{3600, 600},          // an early window holding one long-lived pod
	} {
		start := time.Now()
		s, err := Alibaba(pods, nodes, orgs, fixtureOptions(w.from, w.dur, 1))
		if err != nil {
			t.Fatalf("window [%d, %d): %v", w.from, w.from+w.dur, err)
		}
		took := time.Since(start)

		// The same window, computed from the CSV rows alone.
		var want, inWindow int64
		for _, r := range rows {
			if r["scheduled_time"] == "" {
				continue
			}
			n, milli := atoi(t, r["num_gpu"]), atoi(t, r["gpu_milli"])
			amount := n * 1000
			if n == 1 && milli < 1000 {
				amount = milli
			}
			sched, del := atoi(t, r["scheduled_time"]), atoi(t, r["deletion_time"])
			if o := overlap(sched, del, w.from, w.from+w.dur); amount > 0 && o > 0 {
				want += amount * o
				inWindow++
			}
		}
		got := clippedMilliSeconds(t, s)
		if got != want {
			t.Errorf("window [%d, %d): %d milli-GPU-seconds imported, %d in the CSV", w.from, w.from+w.dur, got, want)
		}
		if int64(len(s.Pods)) != inWindow {
			t.Errorf("window [%d, %d): %d pods imported, %d in the CSV", w.from, w.from+w.dur, len(s.Pods), inWindow)
		}
		t.Logf("window [%d, %d): %d pods, %d nodes, %.1f GPU-hours, imported in %s",
			w.from, w.from+w.dur, len(s.Pods), len(s.Nodes), float64(got)/1000/3600, took.Round(time.Millisecond))
	}
}

func TestRealAlibabaMIG(t *testing.T) {
	pods := mustLoad(t, LoadAlibabaPods, needTrace(t, AlibabaPodsFile))
	nodes := mustLoad(t, LoadAlibabaNodes, needTrace(t, AlibabaNodesFile))
	orgs := mustLoad(t, LoadOrgs, needTrace(t, OrgsFile))
	opt := fixtureOptions(148*day, day, 1)
	opt.MIGShare = 0.25
	s, err := Alibaba(pods, nodes, orgs, opt)
	if err != nil {
		t.Fatal(err)
	}
	migNodes, onSlices := 0, 0
	for _, n := range s.Nodes {
		if n.Labels[labelMIGConfig] != "" {
			migNodes++
		}
	}
	for _, p := range s.Pods {
		if strings.HasPrefix(p.Devices[0].Resource, accounting.ResourceMIGPrefix) {
			onSlices++
		}
	}
	// 617 nodes of the trace have 8 GPUs; a quarter of them is 154.
	if migNodes != 154 || onSlices == 0 {
		t.Errorf("%d MIG nodes (want 154), %d pods on slices (want some)", migNodes, onSlices)
	}
}

func TestRealPhilly(t *testing.T) {
	path := needTrace(t, PhillyJobsFile)
	jobs := mustLoad(t, LoadPhillyJobs, path)
	rows := csvRows(t, path)
	for _, w := range []struct{ from, dur int64 }{{0, 6 * 3600}, {2 * 3600, 3600}} {
		s, err := Philly(jobs, fixtureOptions(w.from, w.dur, 1))
		if err != nil {
			t.Fatal(err)
		}
		var want, wantPods int64
		for _, r := range rows {
			n, sub, dur := atoi(t, r["num_gpu"]), atoi(t, r["submit_time"]), atoi(t, r["duration"])
			if o := overlap(sub, sub+dur, w.from, w.from+w.dur); n > 0 && o > 0 {
				want += n * 1000 * o
				wantPods += (n + 7) / 8
			}
		}
		if got := clippedMilliSeconds(t, s); got != want {
			t.Errorf("window [%d, %d): %d milli-GPU-seconds imported, %d in the CSV", w.from, w.from+w.dur, got, want)
		}
		if int64(len(s.Pods)) != wantPods {
			t.Errorf("window [%d, %d): %d pods, want %d", w.from, w.from+w.dur, len(s.Pods), wantPods)
		}
		projects := map[string]bool{}
		for _, ns := range s.Namespaces {
			projects[ns.Name] = true
		}
		t.Logf("window [%d, %d): %d pods, %d nodes, %d projects", w.from, w.from+w.dur, len(s.Pods), len(s.Nodes), len(projects))
	}
}

func BenchmarkAlibabaDay(b *testing.B) {
	dir := traceDir()
	pods, err := LoadAlibabaPods(dir + "/" + AlibabaPodsFile)
	if err != nil {
		b.Skipf("public traces not found at %s: %v", dir, err)
	}
	nodes, err := LoadAlibabaNodes(dir + "/" + AlibabaNodesFile)
	if err != nil {
		b.Fatal(err)
	}
	orgs, err := LoadOrgs(dir + "/" + OrgsFile)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Alibaba(pods, nodes, orgs, fixtureOptions(148*day, day, 1)); err != nil {
			b.Fatal(err)
		}
	}
}
