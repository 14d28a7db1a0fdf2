package fpga

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseSysfsReading(t *testing.T) {
	cases := []struct {
		name    string
		raw     string
		q       quantity
		want    float64
		present bool
		bad     bool
	}{
		{"xmc temperature", "57\n", celsius, 57, true, false},
		{"hwmon temperature", "61000\n", millicelsius, 61, true, false},
		{"hwmon millidegrees", "36500", millicelsius, 36.5, true, false},
		{"millivolts", "12192\n", millivolts, 12.192, true, false},
		{"milliamperes", "33400\n", milliamperes, 33.4, true, false},
		{"microwatts", "49658128\n", microwatts, 49.658128, true, false},
		{"rpm", "2980\n", rpm, 2980, true, false},
		{"NUL-terminated", "42\n\x00", celsius, 42, true, false},
		{"padded", "  42 \t\n", celsius, 42, true, false},
		{"zero is no sensor", "0\n", millivolts, 0, false, false},
		{"garbage", "garbage\n", celsius, 0, false, true},
		{"empty", "", celsius, 0, false, true},
		{"only a newline", "\n", celsius, 0, false, true},
		{"N/A", "N/A\n", millivolts, 0, false, true},
		{"n/a", "n/a", millivolts, 0, false, true},
		{"negative", "-5\n", celsius, 0, false, true},
		{"beyond int64", "99999999999999999999\n", milliamperes, 0, false, true},
		{"all-ones register", "4294967295\n", milliamperes, 0, false, true},
		{"implausible temperature", "201\n", celsius, 0, false, true},
		{"hottest plausible", "200000\n", millicelsius, 200, true, false},
		{"float", "6.5e7\n", microwatts, 0, false, true},
		{"hex", "0x10\n", celsius, 0, false, true},
		{"two numbers", "12 13\n", celsius, 0, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, present, err := parseSysfsReading([]byte(c.raw), c.q)
			if (err != nil) != c.bad {
				t.Fatalf("err = %v, want bad=%v", err, c.bad)
			}
			if err != nil && !errors.Is(err, ErrBadValue) {
				t.Errorf("error %v does not match ErrBadValue", err)
			}
			if present != c.present || v != c.want {
				t.Errorf("= %v, %v; want %v, %v", v, present, c.want, c.present)
			}
		})
	}
}

func TestParseJSONReading(t *testing.T) {
	cases := []struct {
		in      string
		q       quantity
		want    float64
		present bool
		bad     bool
	}{
		{"12.176", volts, 12.176, true, false},
		{"49.658128", watts, 49.658128, true, false},
		{"0", degrees, 0, true, false},
		{" 57 ", degrees, 57, true, false},
		{"", degrees, 0, false, false},
		{"N/A", watts, 0, false, false},
		{"n/a", watts, 0, false, false},
		{"NaN", degrees, 0, false, true},
		{"Inf", watts, 0, false, true},
		{"-infinity", watts, 0, false, true},
		{"-0.5", amperes, 0, false, true},
		{"1e300", degrees, 0, false, true},
		{"forty", degrees, 0, false, true},
		{notScalar, degrees, 0, false, true},
	}
	for _, c := range cases {
		v, present, err := parseJSONReading(c.in, c.q)
		if (err != nil) != c.bad || present != c.present || v != c.want {
			t.Errorf("parseJSONReading(%q) = %v, %v, %v; want %v, %v, bad=%v", c.in, v, present, err, c.want, c.present, c.bad)
		}
	}
}

func TestParseUUID(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{"6f6b7f1c-2d3e-4a5b-8c9d-0e1f2a3b4c5d\n", "6f6b7f1c-2d3e-4a5b-8c9d-0e1f2a3b4c5d", false},
		{"3D1E0F2A-9B8C-4D7E-A6F5-0E1D2C3B4A59", "3d1e0f2a-9b8c-4d7e-a6f5-0e1d2c3b4a59", false},
		{"0 6f6b7f1c-2d3e-4a5b-8c9d-0e1f2a3b4c5d\n1 00000000-0000-0000-0000-000000000001\n", "6f6b7f1c-2d3e-4a5b-8c9d-0e1f2a3b4c5d", false},
		{"00000000-0000-0000-0000-000000000000\n", "", false},
		{"", "", false},
		{"N/A", "", false},
		{"not-a-uuid", "", true},
		{"6f6b7f1c2d3e4a5b8c9d0e1f2a3b4c5d", "", true},
		{"6f6b7f1c-2d3e-4a5b-8c9d-0e1f2a3b4c5g", "", true},
		{notScalar, "", true},
	}
	for _, c := range cases {
		got, err := parseUUID(c.in)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("parseUUID(%q) = %q, %v; want %q, bad=%v", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestParseText(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{"xilinx_u55c_gen3x16_xdma_base_3\n", "xilinx_u55c_gen3x16_xdma_base_3", false},
		{"ALVEO U55C\x00", "ALVEO U55C", false},
		{"N/A", "", false},
		{"\xff\xfe\n", "", true},
		{"bad\x07bell", "", true},
		{strings.Repeat("x", maxText+1), "", true},
		{notScalar, "", true},
	}
	for _, c := range cases {
		got, err := parseText(c.in)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("parseText(%q) = %q, %v; want %q, bad=%v", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestParseCUStat(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want []ComputeUnit
		errs int
	}{
		{"XRT 2022.1+ format", "0,0,krnl_vadd:krnl_vadd_1,0x800000,0x4,1523\n0,1,krnl_vadd:krnl_vadd_2,0x810000,0x4,1498\n",
			[]ComputeUnit{{"krnl_vadd:krnl_vadd_1", 1523}, {"krnl_vadd:krnl_vadd_2", 1498}}, 0},
		{"older format, NUL-terminated", "0,vadd:vadd_1,0x1800000,0x4,12\n1,vadd:vadd_2,0x1810000,0x4,7\n\x00",
			[]ComputeUnit{{"vadd:vadd_1", 12}, {"vadd:vadd_2", 7}}, 0},
		{"largest count", "0,k:k_1,0x0,0x4,18446744073709551615\n", []ComputeUnit{{"k:k_1", math.MaxUint64}}, 0},
		{"empty", "", nil, 0},
		{"bad lines kept apart", "0,k:k_1,0x0,0x4,5\n2,bad line\n1,k:k_2,0x0,0x4,-1\nx,k:k_3,0x0,0x4,1\n0,k:k_1,0x0,0x4,6\n3,,0x0,0x4,1\n0,x,4,k:k_4,0x0,0x4,1\n",
			[]ComputeUnit{{"k:k_1", 5}}, 6},
		{"beyond uint64", "0,k:k_1,0x0,0x4,18446744073709551616\n", nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, errs := parseCUStat([]byte(c.raw))
			if len(errs) != c.errs {
				t.Errorf("%d errors %v, want %d", len(errs), errs, c.errs)
			}
			if len(got) != len(c.want) {
				t.Fatalf("= %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("[%d] = %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestModelOf(t *testing.T) {
	cases := []struct{ shell, board, want string }{
		{"xilinx_u55c_gen3x16_xdma_base_3", "", "Alveo U55C"},
		{"xilinx_u250_gen3x16_xdma_4_1_202210_1", "", "Alveo U250"},
		{"xilinx_u200_xdma_201820_1", "", "Alveo U200"},
		{"xilinx_u280_xdma_201920_3", "", "Alveo U280"},
		{"xilinx_v70_gen5x8_qdma_2_202220_1", "", "Alveo V70"},
		{"xilinx_vck5000_gen4x8_qdma_2_202220_1", "", "VCK5000"},
		{"xilinx_vcu1525_dynamic_5_1", "", "VCU1525"},
		{"", "ALVEO U55C", "Alveo U55C"},
		{"", "Some Board", "Some Board"},
		{"custom_shell", "", "custom_shell"},
		{"", "", ""},
	}
	for _, c := range cases {
		if got := modelOf(c.shell, c.board); got != c.want {
			t.Errorf("modelOf(%q, %q) = %q, want %q", c.shell, c.board, got, c.want)
		}
	}
}

func TestNormBDF(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{"0000:d1:00.1", "0000:d1:00.1", false},
		{"0000:D1:00.1", "0000:d1:00.1", false},
		{"d1:00.1", "0000:d1:00.1", false},
		{"[0000:3b:00.1]", "0000:3b:00.1", false},
		{"0000:d1:00.8", "", true},
		{"nowhere", "", true},
		{"", "", true},
	}
	for _, c := range cases {
		got, err := normBDF(c.in)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("normBDF(%q) = %q, %v; want %q, bad=%v", c.in, got, err, c.want, c.bad)
		}
	}
}
