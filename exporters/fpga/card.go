package fpga

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
)

// Card is what one poll learnt of one FPGA card. Absent readings are
// absent from the maps; every value is in base units.
type Card struct {
	// BDF is the PCI address of the card's user function
	// ("0000:d1:00.1"): the device ID the AMD/Xilinx device plugin gives
	// the kubelet.
	BDF string
	// Shell is the platform's VBNV ("xilinx_u55c_gen3x16_xdma_base_3").
	Shell string
	// Model is derived from the shell, else the board name ("Alveo U55C").
	Model      string
	Board      string // board name reported by the card's controller
	Serial     string // card serial number
	FPGAPart   string // FPGA part ("xcu55c-fsvh2892-2L-e")
	XclbinUUID string // loaded xclbin, lower case; "" when none
	// Temperatures by XRT location ID ("fpga0", "fpga_hbm"), °C.
	Temperatures map[string]float64
	// Voltages and Currents by XRT rail ID ("12v_pex", "vccint"), V and A.
	Voltages, Currents map[string]float64
	// Fans by XRT location ID ("fpga_fan_1"), rpm.
	Fans map[string]float64
	// Power is the card's power draw in W, when HasPower.
	Power    float64
	HasPower bool
	// ComputeUnits are the loaded xclbin's compute units with their
	// execution counts, in the order the source listed them.
	ComputeUnits []ComputeUnit
}

func newCard(bdf string) *Card {
	return &Card{BDF: bdf, Temperatures: map[string]float64{}, Voltages: map[string]float64{},
		Currents: map[string]float64{}, Fans: map[string]float64{}}
}

// readings returns the map of a kind of reading (nil for the power).
func (c *Card) readings(k kind) map[string]float64 {
	switch k {
	case kindTemperature:
		return c.Temperatures
	case kindVoltage:
		return c.Voltages
	case kindCurrent:
		return c.Currents
	case kindFan:
		return c.Fans
	}
	return nil
}

// has reports whether the card already has a reading of sensor s.
func (c *Card) has(s sensor) bool {
	if s.kind == kindPower {
		return c.HasPower
	}
	_, ok := c.readings(s.kind)[s.id]
	return ok
}

// set records a reading of s unless one is already there: the first source
// read wins.
func (c *Card) set(s sensor, v float64) {
	if c.has(s) {
		return
	}
	if s.kind == kindPower {
		c.Power, c.HasPower = v, true
		return
	}
	c.readings(s.kind)[s.id] = v
}

// fill completes c with what o knows and c does not: identity fields that
// are empty, readings that are absent, and the compute units when c has
// none.
func (c *Card) fill(o *Card) {
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&c.Shell, o.Shell}, {&c.Board, o.Board}, {&c.Serial, o.Serial},
		{&c.FPGAPart, o.FPGAPart}, {&c.XclbinUUID, o.XclbinUUID}, {&c.Model, o.Model},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	for _, k := range []kind{kindTemperature, kindVoltage, kindCurrent, kindFan} {
		dst := c.readings(k)
		for id, v := range o.readings(k) {
			if _, ok := dst[id]; !ok {
				dst[id] = v
			}
		}
	}
	if !c.HasPower && o.HasPower {
		c.Power, c.HasPower = o.Power, true
	}
	if len(c.ComputeUnits) == 0 && len(o.ComputeUnits) > 0 {
		c.ComputeUnits = append([]ComputeUnit(nil), o.ComputeUnits...)
	}
}

// clone returns a deep copy of c.
func (c *Card) clone() *Card {
	d := *c
	d.Temperatures, d.Voltages = maps.Clone(c.Temperatures), maps.Clone(c.Voltages)
	d.Currents, d.Fans = maps.Clone(c.Currents), maps.Clone(c.Fans)
	d.ComputeUnits = append([]ComputeUnit(nil), c.ComputeUnits...)
	return &d
}

// shellBoardRE takes the board out of a VBNV: the token after the vendor,
// "u55c" in "xilinx_u55c_gen3x16_xdma_base_3".
var shellBoardRE = regexp.MustCompile(`^(?:xilinx|amd)_([a-z]+[0-9]+[a-z0-9]*)_`)

// alveoRE matches the boards sold as Alveo (U50, U55C, U200, U250, U280,
// V70…).
var alveoRE = regexp.MustCompile(`^[uv][0-9]+[a-z]*$`)

// modelOf names a card's model: "Alveo U55C" from its VBNV, an upper-case
// board ("VCK5000") for other AMD/Xilinx shells, else from the controller's
// board name ("ALVEO U55C" gives "Alveo U55C"; others are kept as they are),
// else the VBNV itself.
func modelOf(shell, board string) string {
	if m := shellBoardRE.FindStringSubmatch(strings.ToLower(shell)); m != nil {
		if alveoRE.MatchString(m[1]) {
			return "Alveo " + strings.ToUpper(m[1])
		}
		return strings.ToUpper(m[1])
	}
	if m := alveoBoardRE.FindStringSubmatch(board); m != nil {
		return "Alveo " + strings.ToUpper(m[1])
	}
	if board != "" {
		return board
	}
	return shell
}

// alveoBoardRE matches a controller's board name for an Alveo card
// ("ALVEO U55C").
var alveoBoardRE = regexp.MustCompile(`(?i)^alveo[ _-]?([uv][0-9]+[a-z]*)$`)

// bdfRE is a full PCI address: domain, bus, device, function.
var bdfRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// normBDF normalises a PCI address to the kubelet's form, lower case with
// its domain ("0000:d1:00.1"); "d1:00.1" and "[0000:D1:00.1]" are accepted.
func normBDF(s string) (string, error) {
	b := strings.ToLower(strings.Trim(strings.TrimSpace(s), "[]"))
	if len(b) == len("d1:00.1") {
		b = "0000:" + b
	}
	if !bdfRE.MatchString(b) {
		return "", fmt.Errorf("%w: %s is not a PCI address", ErrBadValue, quote(s))
	}
	return b, nil
}
