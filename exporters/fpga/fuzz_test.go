package fpga

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Seed corpora: testdata/fuzz/FuzzSysfsValue and testdata/fuzz/FuzzXbutilJSON.
// Run: go test ./exporters/fpga -run '^$' -fuzz FuzzSysfsValue

var fuzzQuantities = []quantity{celsius, millicelsius, millivolts, milliamperes, microwatts, rpm}

// FuzzSysfsValue feeds any file content to the sysfs parsers: none panics,
// and whatever they keep is a usable value.
func FuzzSysfsValue(f *testing.F) {
	f.Add([]byte("57\n"))
	f.Add([]byte("0,0,krnl_vadd:krnl_vadd_1,0x800000,0x4,1523\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, q := range fuzzQuantities {
			v, present, err := parseSysfsReading(data, q)
			switch {
			case err != nil:
				if present || !errors.Is(err, ErrBadValue) {
					t.Fatalf("%v: present %v with error %v", q, present, err)
				}
			case present:
				if math.IsNaN(v) || v <= 0 || v > q.max {
					t.Fatalf("%v: kept %v", q, v)
				}
			default:
				if n, err := parseSysfsInt(data); err != nil || n != 0 {
					t.Fatalf("%v: absent but reads %d, %v", q, n, err)
				}
			}
		}
		cus, _ := parseCUStat(data)
		if len(cus) > maxComputeUnits {
			t.Fatalf("%d compute units", len(cus))
		}
		seen := map[string]bool{}
		for _, cu := range cus {
			if !validLabel(cu.Name) || seen[cu.Name] {
				t.Fatalf("compute unit %q (repeated: %v)", cu.Name, seen[cu.Name])
			}
			seen[cu.Name] = true
		}
		if u, err := parseUUID(string(data)); err == nil && u != "" && !isUUID(u) {
			t.Fatalf("UUID %q", u)
		}
		if s, err := parseText(string(data)); err == nil && (len(s) > maxText || !validLabel(s) && s != "") {
			t.Fatalf("text %q", s)
		}
	})
}

// FuzzXbutilJSON feeds any document to ParseXbutil: it never panics, and
// every card it returns has a PCI address, readings in range and label
// values the collector can send.
func FuzzXbutilJSON(f *testing.F) {
	f.Add([]byte(`{"devices": [{"device_id": "0000:d1:00.1", "thermals": [{"location_id": "fpga0", "temp_C": "57", "is_present": "true"}]}]}`))
	f.Add([]byte(`{"devices": ""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cards, _ := ParseXbutil(data)
		s := &Source{node: "n"}
		seen := map[string]bool{}
		for _, c := range cards {
			if !bdfRE.MatchString(c.BDF) || seen[c.BDF] {
				t.Fatalf("device %q (repeated: %v)", c.BDF, seen[c.BDF])
			}
			seen[c.BDF] = true
			checkCard(t, c)
			ch := make(chan prometheus.Metric, 4096)
			s.sendCard(ch, c)
			if got, want := len(ch), seriesOf(c); got != want {
				t.Fatalf("card %s: %d series sent, want %d", c.BDF, got, want)
			}
		}
	})
}

func checkCard(t *testing.T, c *Card) {
	t.Helper()
	limits := map[kind]float64{kindTemperature: maxCelsius, kindVoltage: maxVolts, kindCurrent: maxAmperes, kindFan: maxRPM}
	for k, max := range limits {
		for id, v := range c.readings(k) {
			if id == "" || sanitizeID(id) != id || math.IsNaN(v) || v < 0 || v > max {
				t.Fatalf("card %s: reading %q = %v", c.BDF, id, v)
			}
		}
	}
	if c.HasPower && (math.IsNaN(c.Power) || c.Power < 0 || c.Power > maxWatts) {
		t.Fatalf("card %s: power %v", c.BDF, c.Power)
	}
	for _, s := range []string{c.Shell, c.Model, c.Board, c.Serial, c.FPGAPart} {
		if s != "" && !validLabel(s) {
			t.Fatalf("card %s: text %q", c.BDF, s)
		}
	}
	if c.XclbinUUID != "" && !isUUID(c.XclbinUUID) {
		t.Fatalf("card %s: xclbin %q", c.BDF, c.XclbinUUID)
	}
}

// seriesOf counts the series sendCard sends for a card.
func seriesOf(c *Card) int {
	n := 1 + len(c.Temperatures) + len(c.Voltages) + len(c.Currents) + len(c.Fans) + len(c.ComputeUnits)
	if c.Board != "" || c.Serial != "" || c.FPGAPart != "" {
		n++
	}
	if c.HasPower {
		n++
	}
	return n
}

// validLabel reports whether s is a non-empty, printable UTF-8 label value.
func validLabel(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}
