package fpga

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadSysfs(t *testing.T) {
	root := sysfsTree(t, "u55c-u250")
	cards, errs := readSysfs(root)
	var bdfs []string
	for _, c := range cards {
		bdfs = append(bdfs, c.BDF)
	}
	// The user functions only: not the management functions, the GPU or the bridge.
	if want := []string{"0000:3b:00.1", "0000:d1:00.1"}; !slices.Equal(bdfs, want) {
		t.Fatalf("cards %v, want %v", bdfs, want)
	}
	u250, u55c := cards[0], cards[1]

	t.Run("U55C", func(t *testing.T) {
		c := u55c
		checkText(t, "shell", c.Shell, "xilinx_u55c_gen3x16_xdma_base_3")
		checkText(t, "model", c.Model, "Alveo U55C")
		checkText(t, "board", c.Board, "ALVEO U55C")
		checkText(t, "serial", c.Serial, "XFL1U55C0001")
		checkText(t, "xclbin", c.XclbinUUID, "6f6b7f1c-2d3e-4a5b-8c9d-0e1f2a3b4c5d")
		checkReadings(t, "temperature", c.Temperatures, map[string]float64{
			"pcb_top_front": 42, "pcb_top_rear": 39, "cage_temp_0": 37, "fpga0": 57, "int_vcc": 50, "fpga_hbm": 52})
		checkReadings(t, "voltage", c.Voltages, map[string]float64{
			"12v_aux": 12.192, "12v_pex": 12.176, "3v3_pex": 3.288, "vccint": 0.853, "vccint_io": 0.855,
			"5v5_system": 5.008, "1v8_top": 1.808, "0v9_vcc": 0.904, "mgt_vtt": 1.2, "3v3_vcc": 3.361,
			"hbm_1v2": 1.202, "vpp2v5": 2.489})
		checkReadings(t, "current", c.Currents, map[string]float64{
			"12v_aux": 1.848, "12v_pex": 1.865, "3v3_pex": 1.344, "vccint": 33.4, "vccint_io": 3.9})
		checkReadings(t, "fan", c.Fans, map[string]float64{}) // 0 rpm: no fan
		// No xmc_power on this card: the hwmon power1_input (µW) fills in.
		if !c.HasPower || c.Power != 49.658128 {
			t.Errorf("power %v (%v), want 49.658128 W from hwmon", c.Power, c.HasPower)
		}
		want := []ComputeUnit{{"krnl_vadd:krnl_vadd_1", 1523}, {"krnl_vadd:krnl_vadd_2", 1498}}
		if !slices.Equal(c.ComputeUnits, want) {
			t.Errorf("compute units %v, want %v", c.ComputeUnits, want)
		}
	})

	t.Run("U250 with junk", func(t *testing.T) {
		c := u250
		checkText(t, "shell", c.Shell, "xilinx_u250_gen3x16_xdma_4_1_202210_1")
		checkText(t, "model", c.Model, "Alveo U250")
		checkText(t, "serial", c.Serial, "") // not UTF-8
		checkText(t, "xclbin", c.XclbinUUID, "")
		// fpga0 from hwmon temp4 (the XMC file is junk), cage_temp_0 from
		// the labelled temp11; TCRIT and the sysmon device left out.
		checkReadings(t, "temperature", c.Temperatures, map[string]float64{"pcb_top_rear": 41, "fpga0": 61, "cage_temp_0": 36.5})
		// 12v_pex from hwmon in0 (the XMC file is empty); 12v_aux N/A.
		checkReadings(t, "voltage", c.Voltages, map[string]float64{"vccint": 0.85, "3v3_pex": 3.3, "12v_pex": 12.1})
		// vccint from the unlabelled curr3 (the XMC file overflows); 12v_pex implausible.
		checkReadings(t, "current", c.Currents, map[string]float64{"12v_aux": 2.1, "vccint": 28})
		checkReadings(t, "fan", c.Fans, map[string]float64{"fpga_fan_1": 2980})
		if !c.HasPower || c.Power != 65.4 {
			t.Errorf("power %v (%v), want 65.4 W from hwmon", c.Power, c.HasPower)
		}
		want := []ComputeUnit{{"vadd:vadd_1", 12}, {"vadd:vadd_2", 7}}
		if !slices.Equal(c.ComputeUnits, want) {
			t.Errorf("compute units %v, want %v", c.ComputeUnits, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		var got []string
		for _, e := range errs {
			if e.device != "0000:3b:00.1" || e.source != sourceSysfs {
				t.Errorf("error %v on %q/%q, want the U250's sysfs", e, e.device, e.source)
			}
			rel, _ := filepath.Rel(filepath.Join(root, "bus/pci/devices/0000:3b:00.1"), e.key)
			got = append(got, rel)
		}
		slices.Sort(got)
		want := []string{"kds_custat_raw", "xmc.u.2049/serial_num", "xmc.u.2049/xmc_12v_aux_vol",
			"xmc.u.2049/xmc_12v_pex_curr", "xmc.u.2049/xmc_12v_pex_vol", "xmc.u.2049/xmc_fpga_temp",
			"xmc.u.2049/xmc_power", "xmc.u.2049/xmc_se98_temp0", "xmc.u.2049/xmc_vccint_curr"}
		if !slices.Equal(got, want) {
			t.Errorf("errors on\n%v\nwant\n%v", got, want)
		}
		for _, e := range errs {
			if !strings.Contains(e.Error(), e.key) {
				t.Errorf("error %q does not name its file", e.Error())
			}
		}
	})
}

func checkText(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func checkReadings(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s readings\n%v\nwant\n%v", what, got, want)
	}
}

func TestReadSysfsNoCards(t *testing.T) {
	for name, root := range map[string]string{
		"GPU node":    sysfsTree(t, "gpu-node"),
		"empty sysfs": t.TempDir(),
		"no sysfs":    filepath.Join(t.TempDir(), "missing"),
	} {
		cards, errs := readSysfs(root)
		if len(cards) != 0 || len(errs) != 0 {
			t.Errorf("%s: %d cards, errors %v; want none", name, len(cards), errs)
		}
	}
}

func TestReadSysfsUnreadable(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bus", "pci"), 0o755); err != nil {
		t.Fatal(err)
	}
	// devices is a file: the listing fails.
	if err := os.WriteFile(filepath.Join(root, "bus", "pci", "devices"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cards, errs := readSysfs(root)
	if len(cards) != 0 || len(errs) != 1 || errs[0].device != "" {
		t.Fatalf("cards %v, errors %v; want one error about no card", cards, errs)
	}
}

func TestReadSysfsOversizedFile(t *testing.T) {
	root := sysfsTree(t, "u55c-u250")
	path := filepath.Join(root, "bus/pci/devices/0000:d1:00.1/xmc.u.1025/xmc_fpga_temp")
	if err := os.WriteFile(path, []byte(strings.Repeat("5", maxSysfsFile+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cards, errs := readSysfs(root)
	if len(errs) != 10 || !slices.ContainsFunc(errs, func(e readError) bool { return e.key == path }) {
		t.Fatalf("errors %v, want the U250's nine and the oversized file", errs)
	}
	if _, ok := cards[1].Temperatures["fpga0"]; ok {
		t.Error("fpga0 read from an oversized file")
	}
}

func TestHwmonSensor(t *testing.T) {
	cases := []struct {
		typ, prefix, label string
		xmc                bool
		want               sensor
		ok                 bool
	}{
		{"temp", "temp4", "", true, sensor{kindTemperature, "fpga0", millicelsius}, true},
		{"temp", "temp4", "FPGA TEMP", false, sensor{kindTemperature, "fpga0", millicelsius}, true},
		{"curr", "curr5", "VCC 0V85 Current", false, sensor{kindCurrent, "vccint_io", milliamperes}, true},
		{"curr", "curr9", "Aux 5V Current", false, sensor{kindCurrent, "aux_5v", milliamperes}, true},
		{"in", "in3", "", true, sensor{kindVoltage, "3v3_aux", millivolts}, true},
		{"in", "in3", "", false, sensor{}, false},
		{"temp", "temp5", "", true, sensor{}, false},
		{"temp", "temp5", "TCRIT TEMP", true, sensor{}, false},
		{"power", "power2", "CS_TARGET_POWER", true, sensor{}, false},
		{"power", "power1", "", true, sensor{kindPower, "", microwatts}, true},
		{"power", "power3", "Other power", true, sensor{}, false},
		{"fan", "fan1", "", true, sensor{kindFan, "fpga_fan_1", rpm}, true},
		{"temp", "temp40", "", true, sensor{}, false},
		{"temp", "temp1", "***", true, sensor{}, false},
	}
	for _, c := range cases {
		got, ok := hwmonSensor(c.typ, c.prefix, c.label, c.xmc)
		if got != c.want || ok != c.ok {
			t.Errorf("hwmonSensor(%q, %q, %q, %v) = %v, %v; want %v, %v", c.typ, c.prefix, c.label, c.xmc, got, ok, c.want, c.ok)
		}
	}
}
