package trace

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// fixtures is the repository's testdata/trace.
const fixtures = "../../testdata/trace"

var testEpoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func fixture(name string) string { return filepath.Join(fixtures, name) }

func mustLoad[T any](t *testing.T, load func(string) (T, error), path string) T {
	t.Helper()
	v, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fixtureOptions selects the fixtures' window [from, from+dur) seconds.
func fixtureOptions(from, dur int64, seed uint64) Options {
	return Options{Epoch: testEpoch, From: time.Duration(from) * time.Second,
		Duration: time.Duration(dur) * time.Second, Seed: seed}
}

func importAlibabaFixture(t *testing.T, opt Options) (*scenario.Scenario, map[string]tenant) {
	t.Helper()
	s, tenants, err := buildAlibaba(
		mustLoad(t, LoadAlibabaPods, fixture("alibaba_pods.csv")),
		mustLoad(t, LoadAlibabaNodes, fixture("alibaba_nodes.csv")),
		mustLoad(t, LoadOrgs, fixture("orgs.csv")), opt)
	if err != nil {
		t.Fatal(err)
	}
	return s, tenants
}

func encode(t *testing.T, s *scenario.Scenario) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := scenario.Write(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func podByName(s *scenario.Scenario) map[string]*scenario.Pod {
	out := map[string]*scenario.Pod{}
	for i := range s.Pods {
		out[s.Pods[i].Name] = &s.Pods[i]
	}
	return out
}

// clippedMilliSeconds sums the scenario's ground truth over its window:
// weight × seconds of every allocation, clipped to [Start, End).
func clippedMilliSeconds(t *testing.T, s *scenario.Scenario) int64 {
	t.Helper()
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, a := range allocs {
		start, end := a.Start, a.End
		if start.Before(s.Start) {
			start = s.Start
		}
		if a.End.IsZero() || end.After(s.End) {
			end = s.End
		}
		if end.After(start) {
			sum += a.WeightMilli * int64(end.Sub(start)/time.Second)
		}
	}
	return sum
}

// traceDir is $TRACE_DIR, else ../shared/data beside the repository.
func traceDir() string {
	if d := os.Getenv("TRACE_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "data")
}

// needTrace returns the path of a public trace file or skips the test.
func needTrace(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(traceDir(), rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("public traces not found at %s: %v (set TRACE_DIR or check out ../shared beside the repository)", traceDir(), err)
	}
	return p
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
