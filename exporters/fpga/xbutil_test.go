package fpga

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func parseFile(t *testing.T, path string) ([]*Card, []error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ParseXbutil(data)
}

func TestParseXbutil(t *testing.T) {
	cards, errs := parseFile(t, "testdata/xbutil/u55c-u250-v70.json")
	if len(errs) != 0 {
		t.Errorf("errors: %v", errs)
	}
	if len(cards) != 3 {
		t.Fatalf("%d cards, want 3", len(cards))
	}
	u55c, u250, v70 := cards[0], cards[1], cards[2]

	checkText(t, "U55C device", u55c.BDF, "0000:d1:00.1")
	checkText(t, "U55C shell", u55c.Shell, "xilinx_u55c_gen3x16_xdma_base_3")
	checkText(t, "U55C model", u55c.Model, "Alveo U55C")
	checkText(t, "U55C part", u55c.FPGAPart, "xcu55c-fsvh2892-2L-e")
	checkText(t, "U55C serial", u55c.Serial, "XFL1U55C0001")
	checkReadings(t, "U55C temperature", u55c.Temperatures, map[string]float64{"fpga0": 58, "int_vcc": 51})
	checkReadings(t, "U55C voltage", u55c.Voltages, map[string]float64{"1v8_top": 1.80884})
	checkReadings(t, "U55C current", u55c.Currents, map[string]float64{})
	checkReadings(t, "U55C fan", u55c.Fans, map[string]float64{})
	if !u55c.HasPower || u55c.Power != 50.125 {
		t.Errorf("U55C power %v, %v", u55c.Power, u55c.HasPower)
	}

	// {"msg": "No sensors present"}, "N/A" power, "" fans.
	checkReadings(t, "U250 temperature", u250.Temperatures, map[string]float64{})
	checkReadings(t, "U250 voltage", u250.Voltages, map[string]float64{"12v_aux": 12.201})
	checkReadings(t, "U250 current", u250.Currents, map[string]float64{})
	if u250.HasPower {
		t.Errorf("U250 power %v from N/A", u250.Power)
	}
	checkText(t, "U250 serial", u250.Serial, "21330621T04M")

	checkText(t, "V70 model", v70.Model, "Alveo V70")
	checkText(t, "V70 xclbin", v70.XclbinUUID, "3d1e0f2a-9b8c-4d7e-a6f5-0e1d2c3b4a59")
	if want := []ComputeUnit{{"resnet:resnet_1", 42}}; !slices.Equal(v70.ComputeUnits, want) {
		t.Errorf("V70 compute units %v, want %v", v70.ComputeUnits, want)
	}
}

func TestParseXbutilJunk(t *testing.T) {
	cards, errs := parseFile(t, "testdata/xbutil/junk.json")
	var bdfs []string
	for _, c := range cards {
		bdfs = append(bdfs, c.BDF)
	}
	if want := []string{"0000:d1:00.1", "0000:d2:00.1"}; !slices.Equal(bdfs, want) {
		t.Fatalf("cards %v, want %v", bdfs, want)
	}
	c := cards[0]
	// The scalars given as a number and a boolean are taken.
	checkReadings(t, "temperature", c.Temperatures, map[string]float64{"pcb_top_rear": 39})
	if c.HasPower {
		t.Errorf("power %v from Inf", c.Power)
	}
	checkText(t, "shell", c.Shell, "xilinx_u55c_gen3x16_xdma_base_3") // the bad one skipped
	if want := []ComputeUnit{{"k:k_1", 7}}; !slices.Equal(c.ComputeUnits, want) {
		t.Errorf("compute units %v, want %v", c.ComputeUnits, want)
	}
	checkText(t, "d2 model", cards[1].Model, "Alveo U50")

	var onCard, other []string
	for _, err := range errs {
		if de := (*DeviceError)(nil); errors.As(err, &de) {
			if de.Device != "0000:d1:00.1" {
				t.Errorf("error %v on device %s", err, de.Device)
			}
			onCard = append(onCard, err.Error())
		} else {
			other = append(other, err.Error())
		}
	}
	// NaN, -3, 1e300, forty, no location, an object for a value, a string
	// for a thermal, Inf, a list for mechanical, a non-printable VBNV, a bad
	// UUID, a repeated compute unit, a negative count, a nameless unit.
	if len(onCard) != 14 {
		t.Errorf("%d errors on the card, want 14:\n%s", len(onCard), strings.Join(onCard, "\n"))
	}
	// The repeated device, a bad address, a missing address, a string for a device.
	if len(other) != 4 {
		t.Errorf("%d other errors, want 4:\n%s", len(other), strings.Join(other, "\n"))
	}
}

func TestParseXbutilShapes(t *testing.T) {
	cases := []struct {
		name  string
		doc   string
		cards int
		errs  int
	}{
		{"not JSON", `{"devices": [`, 0, 1},
		{"empty", ``, 0, 1},
		{"not an object", `[1, 2]`, 0, 1},
		{"no devices", `{}`, 0, 0},
		{"empty devices as \"\"", `{"devices": ""}`, 0, 0},
		{"devices a number", `{"devices": 3}`, 0, 1},
		{"bare device", `{"devices": [{"device_id": "0000:01:00.1"}]}`, 1, 0},
		{"electrical a list", `{"devices": [{"device_id": "0000:01:00.1", "electrical": []}]}`, 1, 1},
		{"rails with bad shapes", `{"devices": [{"device_id": "0000:01:00.1", "electrical": {"power_rails": [{"id": "x", "voltage": [], "current": "N/A"}]}}]}`, 1, 1},
		{"absent rail values", `{"devices": [{"device_id": "0000:01:00.1", "electrical": {"power_rails": [{"id": "x", "voltage": {"volts": "N/A"}, "current": {}}]}}]}`, 1, 0},
		{"devices keyed by name", `{"devices": {"a": {"device_id": "0000:01:00.1"}, "b": {"device_id": "0000:02:00.1"}}}`, 2, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cards, errs := ParseXbutil([]byte(c.doc))
			if len(cards) != c.cards || len(errs) != c.errs {
				t.Errorf("%d cards, errors %v; want %d cards, %d errors", len(cards), errs, c.cards, c.errs)
			}
		})
	}
}

// The synthesized U55C document of the reference directory: the JSON shape
// of `xbutil examine -r thermal electrical mechanical platform`, with the
// sensor values of a real U55C.
func TestParseXbutilReference(t *testing.T) {
	dir := refFPGA(t)
	cards, errs := parseFile(t, filepath.Join(dir, "xbutil_examine_thermal_electrical_mechanical_platform.u55c.SYNTHESIZED.json"))
	if len(errs) != 0 {
		t.Errorf("errors: %v", errs)
	}
	if len(cards) != 1 {
		t.Fatalf("%d cards, want 1", len(cards))
	}
	c := cards[0]
	checkText(t, "device", c.BDF, "0000:d1:00.1")
	checkText(t, "shell", c.Shell, "xilinx_u55c_gen3x16_xdma_base_3")
	checkText(t, "model", c.Model, "Alveo U55C")
	checkText(t, "part", c.FPGAPart, "xcu55c-fsvh2892-2L-e")
	checkText(t, "serial", c.Serial, "000000000000")
	if !c.HasPower || c.Power != 49.658128 {
		t.Errorf("power %v, %v; want 49.658128", c.Power, c.HasPower)
	}
	checkReadings(t, "fan", c.Fans, map[string]float64{}) // not present
	if _, ok := c.Temperatures["pcb_bottom_front"]; ok {
		t.Error("a sensor that is not present was read")
	}

	// Every temperature, voltage and current equals the real scrape's,
	// and the scrape has each one we read.
	scrape := readScrape(t, filepath.Join(dir, "xrt-device-exporter_u55c_metrics.prom"))
	for family, got := range map[string]map[string]float64{
		"xrt_device_temperature": c.Temperatures,
		"xrt_device_voltage":     c.Voltages,
		"xrt_device_current":     c.Currents,
	} {
		want := scrape[family]
		if len(want) == 0 {
			t.Errorf("no %s in the scrape", family)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", family, got, want)
		}
	}
	if p := scrape["xrt_device_power_consumption"][""]; p != c.Power {
		t.Errorf("power %v, the scrape has %v", c.Power, p)
	}
}

// readScrape reads a Prometheus exposition: family → location_id → value.
func readScrape(t *testing.T, path string) map[string]map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for name, mf := range mfs {
		out[name] = map[string]float64{}
		for _, m := range mf.Metric {
			loc := ""
			for _, l := range m.Label {
				if l.GetName() == "location_id" {
					loc = l.GetValue()
				}
			}
			out[name][loc] = m.GetGauge().GetValue()
		}
	}
	return out
}

// The device plugin's resource names carry the VBNV: the models derived
// from them name the boards.
func TestModelsOfDevicePluginShells(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(refFPGA(t), "xilinx_k8s_device_plugin_resource_examples.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"xilinx_u200_xdma_201820_1": "Alveo U200", "xilinx_vcu1525_dynamic_5_1": "VCU1525"}
	found := 0
	// xilinx.com/fpga-<VBNV>-<timestamp> (amd.com/<VBNV>-<timestamp> since 2022).
	for _, m := range regexp.MustCompile(`xilinx\.com/fpga-([a-z0-9_]+)-([0-9]+)`).FindAllStringSubmatch(string(data), -1) {
		shell := m[1]
		m, ok := want[shell]
		if !ok {
			t.Errorf("resource of shell %s: add it to the test", shell)
			continue
		}
		found++
		if got := modelOf(shell, ""); got != m {
			t.Errorf("modelOf(%s) = %q, want %q", shell, got, m)
		}
	}
	if found == 0 {
		t.Error("no known shell among the device plugin's resources")
	}
}
