package scenario

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpuledger/gpuledger/attribution"
)

// FuzzParse checks that Parse never panics, that every rejection is a
// ValidationError naming the file, and that whatever it accepts validates,
// expands into allocations, and survives Write → Parse unchanged.
// Seeds: testdata/fuzz/FuzzParse (small.yaml among them).
func FuzzParse(f *testing.F) {
	f.Add([]byte("cluster: x\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errs) == 0 {
				t.Fatalf("Parse error %v (%T) is not a non-empty *ValidationError", err, err)
			}
			for _, fe := range ve.Errs {
				if fe.File != "fuzz.yaml" || fe.Msg == "" || fe.Line < 0 {
					t.Fatalf("problem %q does not name the file, or has no message", fe.Error())
				}
			}
			return
		}
		if err := Validate(s); err != nil {
			t.Fatalf("Parse accepted a scenario that Validate rejects: %v", err)
		}
		if _, err := s.Allocations(attribution.Default()); err != nil {
			t.Fatalf("Allocations of an accepted scenario: %v", err)
		}
		var b1 bytes.Buffer
		if err := Write(&b1, s); err != nil {
			t.Fatalf("Write: %v", err)
		}
		s2, err := Parse("written.yaml", b1.Bytes())
		if err != nil {
			t.Fatalf("written scenario does not parse: %v\n%s", err, b1.String())
		}
		var b2 bytes.Buffer
		if err := Write(&b2, s2); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("Write(Parse(Write(s))) differs from Write(s):\n%s\n---\n%s", b1.String(), b2.String())
		}
	})
}
