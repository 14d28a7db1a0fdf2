package dcgm

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
)

// fuzzLimit keeps fuzzed bodies small; the limit itself is checked too.
const fuzzLimit = 1 << 16

// FuzzParse checks that no body panics Parse and that whatever it keeps
// is well formed: finite values in range, every reading keyed and
// non-empty, sizes bounded by the input. Seeds are in
// testdata/fuzz/FuzzParse: go test ./exporters/dcgm -run '^$' -fuzz FuzzParse
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Parse(bytes.NewReader(body), fuzzLimit)
		if err != nil {
			if p != nil {
				t.Fatalf("error %v with %d readings kept", err, len(p.Readings))
			}
			if !errors.Is(err, ErrBadBody) && !errors.Is(err, ErrNoDCGM) && !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if len(body) > fuzzLimit && !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("%d bytes over a %d limit: %v", len(body), fuzzLimit, err)
			}
			return
		}
		if len(body) > fuzzLimit {
			t.Fatalf("%d bytes accepted over a %d limit", len(body), fuzzLimit)
		}
		checkParsed(t, p, bytes.Count(body, []byte("\n")))
	})
}

// checkParsed asserts the invariants of a parse of a body of lines lines.
func checkParsed(t *testing.T, p *Parsed, lines int) {
	t.Helper()
	if len(p.Readings) > MaxDevices {
		t.Fatalf("%d readings, over %d", len(p.Readings), MaxDevices)
	}
	values := 0
	for i := range p.Readings {
		r := &p.Readings[i]
		if r.UUID == "" || r.GPUInstanceID < -1 || (r.GPUInstanceID == -1 && r.Profile != "") {
			t.Fatalf("bad identity %+v", r.Identity)
		}
		if len(r.Pods) > MaxPods || slices.Contains(r.Pods, Pod{}) {
			t.Fatalf("%d pods, %v", len(r.Pods), r.Pods)
		}
		n := 0
		for _, fld := range Fields() {
			v, ok := r.Value(fld)
			if !ok {
				continue
			}
			n++
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || math.Signbit(v) || (fieldSpecs[fld].max > 0 && v > fieldSpecs[fld].max) {
				t.Fatalf("%s of %s = %v kept", fld, r.UUID, v)
			}
		}
		if n == 0 {
			t.Fatalf("reading %s/%d has no value", r.UUID, r.GPUInstanceID)
		}
		values += n
		if i > 0 {
			prev := &p.Readings[i-1]
			if prev.UUID > r.UUID || (prev.UUID == r.UUID && prev.GPUInstanceID >= r.GPUInstanceID) {
				t.Fatalf("readings out of order or repeated: %s/%d then %s/%d", prev.UUID, prev.GPUInstanceID, r.UUID, r.GPUInstanceID)
			}
		}
	}
	if values != p.Samples {
		t.Fatalf("%d values in readings, Samples says %d", values, p.Samples)
	}
	dropped := 0
	for reason, n := range p.Dropped {
		if !slices.Contains(Reasons(), reason) || n <= 0 {
			t.Fatalf("dropped %d for reason %q", n, reason)
		}
		dropped += n
	}
	// Every sample is a line of its own, the last one ended by a newline.
	if p.Samples+dropped > lines {
		t.Fatalf("%d samples kept and %d dropped from %d lines", p.Samples, dropped, lines)
	}
}
