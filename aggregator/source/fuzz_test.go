package source

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseText feeds arbitrary expositions to the conversion: it must never
// panic, and whatever it keeps must be within the documented ranges. The
// seed corpus is under testdata/fuzz/FuzzParseText.
func FuzzParseText(f *testing.F) {
	f.Add([]byte("gpuledger_exporter_time_seconds 1.79361762e+09\n" +
		alloc(allocLabels(), "1.7936082e+09", "0.143", "1", "", "0.5")))
	f.Add([]byte(alloc(allocLabels(), "1793608200", "NaN", "-1", "1793608100", "2")))
	fallback := time.UnixMilli(1_793_600_000_000)
	f.Fuzz(func(t *testing.T, body []byte) {
		sc, err := ParseText("fuzz", bytes.NewReader(body), fallback)
		var se *SeriesError
		if err != nil && !errors.As(err, &se) {
			if sc.OK || !(errors.Is(err, ErrBadBody) || errors.Is(err, ErrBodyTooLarge)) {
				t.Fatalf("unreadable body: OK %v, error %v", sc.OK, err)
			}
			return
		}
		if !sc.OK || sc.Target != "fuzz" || sc.Time <= 0 {
			t.Fatalf("scrape %+v", sc)
		}
		if se != nil && (se.Dropped < len(se.Errs) || len(se.Errs) > maxSeriesErrors) {
			t.Fatalf("series error counts: %d dropped, %d errors", se.Dropped, len(se.Errs))
		}
		for i, a := range sc.Allocs {
			if a.Start < 1 || a.WeightMilli < 0 || a.WeightMilli > maxWeight*1000 || a.Devices < 0 ||
				(a.End != 0 && a.End < a.Start) || a.ActivityMilli < -1 || a.ActivityMilli > 1000 ||
				a.Node == "" || a.PodUID == "" || a.Resource == "" || a.Class == "" {
				t.Fatalf("allocation out of range: %+v", a)
			}
			if i > 0 && !keyLess(sc.Allocs[i-1].AllocKey, a.AllocKey) {
				t.Fatalf("allocations not sorted or not unique: %+v then %+v", sc.Allocs[i-1].AllocKey, a.AllocKey)
			}
		}
		for i, q := range sc.Quotas {
			if q.ClusterQueue == "" || q.Resource == "" || q.NominalMilli < 0 || q.NominalMilli > maxDevices*1000 {
				t.Fatalf("quota out of range: %+v", q)
			}
			if i > 0 {
				p := sc.Quotas[i-1]
				if [3]string{p.ClusterQueue, p.Flavor, p.Resource} == [3]string{q.ClusterQueue, q.Flavor, q.Resource} {
					t.Fatalf("quota served twice: %+v", q)
				}
			}
		}
		for _, g := range sc.GPUs {
			if g.Node == "" || g.UUID == "" || g.EnergyMillijoules < -1 {
				t.Fatalf("GPU out of range: %+v", g)
			}
		}
	})
}
