package fpga

import (
	"bufio"
	"encoding/csv"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readCSV reads a reference CSV, skipping its "# SOURCE" line.
func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, h := range rows[0] {
			m[h] = row[i]
		}
		out = append(out, m)
	}
	return out
}

// units of the reference tables.
var refUnits = map[string]quantity{
	"millivolt": millivolts, "milliamp": milliamperes, "millidegree_celsius": millicelsius,
	"degree_celsius": celsius, "microwatt": microwatts, "rpm": rpm,
}

// The XMC hwmon layout matches the driver's channel table.
func TestHwmonLayoutMatchesReference(t *testing.T) {
	rows := readCSV(t, filepath.Join(refFPGA(t), "xocl_xmc_hwmon_attributes.csv"))
	seen := map[string]bool{}
	for _, r := range rows {
		ch, label := r["hwmon_channel"], r["label"]
		seen[ch] = true
		got, ok := hwmonChannels[ch]
		if !ok {
			if !hwmonSkippedLabels[normLabel(label)] {
				t.Errorf("channel %s (%s) is neither read nor skipped on purpose", ch, label)
			}
			continue
		}
		if normLabel(got.label) != normLabel(label) {
			t.Errorf("channel %s: label %q, the driver's is %q", ch, got.label, label)
		}
		if q, ok := refUnits[r["unit"]]; !ok || q != got.sensor.q {
			t.Errorf("channel %s: unit %v, the driver's is %s", ch, got.sensor.q, r["unit"])
		}
	}
	for ch := range hwmonChannels {
		if !seen[ch] {
			t.Errorf("channel %s is not in the driver's table", ch)
		}
	}
}

// The XMC files carry the sensors xbutil names, in the units XRT reads.
func TestXMCLayoutMatchesReference(t *testing.T) {
	rows := readCSV(t, filepath.Join(refFPGA(t), "xrt_legacy_sensor_sysfs_map.csv"))
	kinds := map[string]kind{"voltage.volts": kindVoltage, "current.amps": kindCurrent, "temp_C": kindTemperature}
	checked := 0
	for _, r := range rows {
		dir, file, ok := strings.Cut(r["sysfs_node"], "/")
		if !ok {
			t.Errorf("sysfs node %q", r["sysfs_node"])
			continue
		}
		if dir == "rom.*" {
			if file != "VBNV" {
				t.Errorf("rom file %s", file)
			}
			continue
		}
		if dir != "xmc.*" {
			t.Errorf("sysfs node %q outside xmc.* and rom.*", r["sysfs_node"])
			continue
		}
		switch file {
		case xmcSerialFile, xmcBoardFile:
			continue
		}
		q, isReading := refUnits[r["raw_unit"]]
		got, read := xmcFiles[file]
		if !isReading {
			// Flags, levels and presence are not readings.
			if read {
				t.Errorf("%s (%s) is read as a reading", file, r["raw_unit"])
			}
			continue
		}
		if !read {
			if file == "xmc_fan_temp" { // the fan controller's trigger, a setting
				continue
			}
			t.Errorf("%s (%s %s) is not read", file, r["json_id"], r["json_field"])
			continue
		}
		checked++
		if got.q != q {
			t.Errorf("%s: unit %v, XRT reads %s", file, got.q, r["raw_unit"])
		}
		switch {
		case r["json_field"] == "electrical.power_consumption_watts":
			if got.kind != kindPower {
				t.Errorf("%s is not the card's power", file)
			}
		case strings.HasSuffix(r["json_field"], ".speed_rpm"):
			if got.kind != kindFan || got.id != "fpga_fan_1" {
				t.Errorf("%s: %v, want the fan fpga_fan_1", file, got)
			}
		default:
			if k, ok := kinds[r["json_field"]]; !ok || k != got.kind || got.id != r["json_id"] {
				t.Errorf("%s: %v, want %s %s", file, got, r["json_id"], r["json_field"])
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d files checked", checked)
	}
}

// The documented sysfs tree of a user function has what the reader reads.
func TestSysfsTreeMatchesReference(t *testing.T) {
	paths := readTree(t, filepath.Join(refFPGA(t), "xrt_sysfs_tree_xocl_userpf_and_xclmgmt.txt"))
	user := paths["0000:04:00.1"]
	if user == nil {
		t.Fatal("no user function in the tree")
	}
	for _, want := range []string{"user_pf", "xclbinuuid", "rom.u.1025/VBNV", "hwmon/hwmon5/curr1_input", "xmc.u.1025/xmc_fpga_temp"} {
		if !user[want] {
			t.Errorf("the user function has no %s", want)
		}
	}
	if paths["0000:04:00.0"]["user_pf"] {
		t.Error("the management function has user_pf")
	}
	xmcRE := regexp.MustCompile(`^xmc\.u\.[0-9]+/(xmc_.*)$`)
	n := 0
	for p := range user {
		m := xmcRE.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		n++
		if _, ok := xmcFiles[m[1]]; !ok && m[1] != "xmc_fan_temp" {
			t.Errorf("%s is not read", p)
		}
	}
	if n < 30 {
		t.Errorf("only %d XMC files in the tree", n)
	}
}

// readTree reads the `tree` listings: root name → paths under it.
func readTree(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	var (
		root  string
		stack []string
	)
	rootRE := regexp.MustCompile(`^  ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := rootRE.FindStringSubmatch(line); m != nil {
			root, stack = m[1], nil
			out[root] = map[string]bool{}
			continue
		}
		i := strings.Index(line, "── ")
		if root == "" || i < 0 {
			continue
		}
		prefix := []rune(line[:i])
		depth := (len(prefix) - 2) / 4 // "  " then 4 columns a level
		name, _, _ := strings.Cut(line[i+len("── "):], " -> ")
		if depth > len(stack) {
			t.Fatalf("tree line %q skips a level", line)
		}
		stack = append(stack[:depth], name)
		out[root][strings.Join(stack, "/")] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
