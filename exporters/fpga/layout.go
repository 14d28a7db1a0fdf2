package fpga

import (
	"regexp"
	"strconv"
	"strings"
)

// This file holds the sysfs layouts of XRT's drivers: which file carries
// which sensor, in which unit, and the XRT sensor ID (the location_id or
// rail id of `xbutil examine -f JSON`) it is exported under, so that a
// sensor has the same name whichever source read it. docs/fpga.md
// describes the layouts.

// kind is the kind of a sensor reading.
type kind int

const (
	kindTemperature kind = iota
	kindVoltage
	kindCurrent
	kindPower
	kindFan
)

// sensor is one file of a layout.
type sensor struct {
	kind kind
	id   string // XRT sensor ID; empty for the card's power
	q    quantity
}

// xmcFiles maps the files of the XMC subdevice directory of the user
// function (xmc.u.<inst>/) to sensors: XRT's legacy sensor readers
// (core/common/sensor.cpp) joined with the driver's sysfs nodes. Values are
// integers in °C, mV, mA, µW or rpm; 0 means the card has no such sensor.
var xmcFiles = map[string]sensor{
	// Temperatures, °C.
	"xmc_se98_temp0":  {kindTemperature, "pcb_top_front", celsius},
	"xmc_se98_temp1":  {kindTemperature, "pcb_top_rear", celsius},
	"xmc_se98_temp2":  {kindTemperature, "pcb_bottom_front", celsius},
	"xmc_cage_temp0":  {kindTemperature, "cage_temp_0", celsius},
	"xmc_cage_temp1":  {kindTemperature, "cage_temp_1", celsius},
	"xmc_cage_temp2":  {kindTemperature, "cage_temp_2", celsius},
	"xmc_cage_temp3":  {kindTemperature, "cage_temp_3", celsius},
	"xmc_fpga_temp":   {kindTemperature, "fpga0", celsius},
	"xmc_vccint_temp": {kindTemperature, "int_vcc", celsius},
	"xmc_hbm_temp":    {kindTemperature, "fpga_hbm", celsius},
	"xmc_dimm_temp0":  {kindTemperature, "dimm_temp_0", celsius},
	"xmc_dimm_temp1":  {kindTemperature, "dimm_temp_1", celsius},
	"xmc_dimm_temp2":  {kindTemperature, "dimm_temp_2", celsius},
	"xmc_dimm_temp3":  {kindTemperature, "dimm_temp_3", celsius},
	// Voltages, mV.
	"xmc_12v_aux_vol":     {kindVoltage, "12v_aux", millivolts},
	"xmc_12v_pex_vol":     {kindVoltage, "12v_pex", millivolts},
	"xmc_3v3_pex_vol":     {kindVoltage, "3v3_pex", millivolts},
	"xmc_3v3_aux_vol":     {kindVoltage, "3v3_aux", millivolts},
	"xmc_vccint_vol":      {kindVoltage, "vccint", millivolts},
	"xmc_vccint_bram_vol": {kindVoltage, "vccint_io", millivolts},
	"xmc_ddr_vpp_btm":     {kindVoltage, "ddr_vpp_btm", millivolts},
	"xmc_ddr_vpp_top":     {kindVoltage, "ddr_vpp_top", millivolts},
	"xmc_sys_5v5":         {kindVoltage, "5v5_system", millivolts},
	"xmc_1v2_top":         {kindVoltage, "1v2_top", millivolts},
	"xmc_vcc1v2_btm":      {kindVoltage, "vcc_1v2_btm", millivolts},
	"xmc_1v8":             {kindVoltage, "1v8_top", millivolts},
	"xmc_mgt0v9avcc":      {kindVoltage, "0v9_vcc", millivolts},
	"xmc_12v_sw":          {kindVoltage, "12v_sw", millivolts},
	"xmc_mgtavtt":         {kindVoltage, "mgt_vtt", millivolts},
	"xmc_3v3_vcc_vol":     {kindVoltage, "3v3_vcc", millivolts},
	"xmc_hbm_1v2_vol":     {kindVoltage, "hbm_1v2", millivolts},
	"xmc_vpp2v5_vol":      {kindVoltage, "vpp2v5", millivolts},
	"xmc_12v_aux1":        {kindVoltage, "12v_aux1", millivolts},
	"xmc_vccaux":          {kindVoltage, "vcc_aux", millivolts},
	"xmc_vccaux_pmc":      {kindVoltage, "vcc_aux_pmc", millivolts},
	"xmc_vccram":          {kindVoltage, "vcc_ram", millivolts},
	"xmc_vccint_vcu_0v9":  {kindVoltage, "0v9_vccint_vcu", millivolts},
	"xmc_0v85":            {kindVoltage, "0v85", millivolts}, // VCC_0V85; no xbutil rail
	// Currents, mA.
	"xmc_12v_aux_curr":  {kindCurrent, "12v_aux", milliamperes},
	"xmc_12v_pex_curr":  {kindCurrent, "12v_pex", milliamperes},
	"xmc_3v3_pex_curr":  {kindCurrent, "3v3_pex", milliamperes},
	"xmc_3v3_aux_cur":   {kindCurrent, "3v3_aux", milliamperes},
	"xmc_vccint_curr":   {kindCurrent, "vccint", milliamperes},
	"xmc_0v85_curr":     {kindCurrent, "vccint_io", milliamperes},
	"xmc_vcc1v2_i":      {kindCurrent, "vcc1v2_i", milliamperes},
	"xmc_v12_in_i":      {kindCurrent, "v12_in_i", milliamperes},
	"xmc_v12_in_aux0_i": {kindCurrent, "v12_in_aux0_i", milliamperes},
	"xmc_v12_in_aux1_i": {kindCurrent, "v12_in_aux1_i", milliamperes},
	"xmc_fan_rpm":       {kindFan, "fpga_fan_1", rpm},
	"xmc_power":         {kindPower, "", microwatts},
}

// Identity files of the XMC directory.
const (
	xmcSerialFile = "serial_num"
	xmcBoardFile  = "bd_name"
)

// hwmonChannel is a channel of the XMC's hwmon device, by its file prefix
// ("temp4", "in0"): its label (the *_label text) and sensor.
type hwmonChannel struct {
	label  string
	sensor sensor
}

// hwmonChannels is the XMC hwmon layout (xocl/subdev/xmc.c), used for the
// channels of a hwmon device named "<VBNV>_user" or "<VBNV>_mgmt" that carry
// no *_label file. Units are the hwmon ones: m°C, mV, mA, µW, rpm. Channels
// left out are not measurements: temp5 is the fan controller's critical
// trigger, temp15 and power2 are clock-scaling targets.
var hwmonChannels = map[string]hwmonChannel{
	"in0":    {"12V PEX", sensor{kindVoltage, "12v_pex", millivolts}},
	"in1":    {"12V AUX", sensor{kindVoltage, "12v_aux", millivolts}},
	"in2":    {"3V3 PEX", sensor{kindVoltage, "3v3_pex", millivolts}},
	"in3":    {"3V3 AUX", sensor{kindVoltage, "3v3_aux", millivolts}},
	"in4":    {"5V5 SYS", sensor{kindVoltage, "5v5_system", millivolts}},
	"in5":    {"1V2 TOP", sensor{kindVoltage, "1v2_top", millivolts}},
	"in6":    {"1V2 BTM", sensor{kindVoltage, "vcc_1v2_btm", millivolts}},
	"in7":    {"1V8 TOP", sensor{kindVoltage, "1v8_top", millivolts}},
	"in8":    {"12V SW", sensor{kindVoltage, "12v_sw", millivolts}},
	"in9":    {"VCC INT", sensor{kindVoltage, "vccint", millivolts}},
	"in10":   {"0V9 MGT", sensor{kindVoltage, "0v9_vcc", millivolts}},
	"in11":   {"0V85", sensor{kindVoltage, "0v85", millivolts}},
	"in12":   {"MGT VTT", sensor{kindVoltage, "mgt_vtt", millivolts}},
	"in13":   {"DDR VPP BOTTOM", sensor{kindVoltage, "ddr_vpp_btm", millivolts}},
	"in14":   {"DDR VPP TOP", sensor{kindVoltage, "ddr_vpp_top", millivolts}},
	"in15":   {"VCC 3V3", sensor{kindVoltage, "3v3_vcc", millivolts}},
	"in16":   {"1V2 HBM", sensor{kindVoltage, "hbm_1v2", millivolts}},
	"in17":   {"2V5 VPP", sensor{kindVoltage, "vpp2v5", millivolts}},
	"in18":   {"VCC INT BRAM", sensor{kindVoltage, "vccint_io", millivolts}},
	"curr1":  {"12V PEX Current", sensor{kindCurrent, "12v_pex", milliamperes}},
	"curr2":  {"12V AUX Current", sensor{kindCurrent, "12v_aux", milliamperes}},
	"curr3":  {"VCC INT Current", sensor{kindCurrent, "vccint", milliamperes}},
	"curr4":  {"3V3 PEX Current", sensor{kindCurrent, "3v3_pex", milliamperes}},
	"curr5":  {"VCC 0V85 Current", sensor{kindCurrent, "vccint_io", milliamperes}},
	"curr6":  {"3V3 AUX Current", sensor{kindCurrent, "3v3_aux", milliamperes}},
	"temp1":  {"PCB TOP FRONT", sensor{kindTemperature, "pcb_top_front", millicelsius}},
	"temp2":  {"PCB TOP REAR", sensor{kindTemperature, "pcb_top_rear", millicelsius}},
	"temp3":  {"PCB BTM FRONT", sensor{kindTemperature, "pcb_bottom_front", millicelsius}},
	"temp4":  {"FPGA TEMP", sensor{kindTemperature, "fpga0", millicelsius}},
	"temp6":  {"DIMM0 TEMP", sensor{kindTemperature, "dimm_temp_0", millicelsius}},
	"temp7":  {"DIMM1 TEMP", sensor{kindTemperature, "dimm_temp_1", millicelsius}},
	"temp8":  {"DIMM2 TEMP", sensor{kindTemperature, "dimm_temp_2", millicelsius}},
	"temp9":  {"DIMM3 TEMP", sensor{kindTemperature, "dimm_temp_3", millicelsius}},
	"temp10": {"HBM TEMP", sensor{kindTemperature, "fpga_hbm", millicelsius}},
	"temp11": {"QSPF 0", sensor{kindTemperature, "cage_temp_0", millicelsius}},
	"temp12": {"QSPF 1", sensor{kindTemperature, "cage_temp_1", millicelsius}},
	"temp13": {"QSPF 2", sensor{kindTemperature, "cage_temp_2", millicelsius}},
	"temp14": {"QSPF 3", sensor{kindTemperature, "cage_temp_3", millicelsius}},
	"fan1":   {"FAN SPEED", sensor{kindFan, "fpga_fan_1", rpm}},
	"power1": {"POWER", sensor{kindPower, "", microwatts}},
}

// hwmonSkippedLabels are the labels of channels that are settings, not
// measurements.
var hwmonSkippedLabels = map[string]bool{"TCRIT TEMP": true, "CS_TARGET_TEMP": true, "CS_TARGET_POWER": true}

// hwmonByLabel indexes hwmonChannels by kind and normalised label.
var hwmonByLabel = func() map[string]sensor {
	m := map[string]sensor{}
	for _, ch := range hwmonChannels {
		m[labelKey(ch.sensor.kind, ch.label)] = ch.sensor
	}
	return m
}()

func labelKey(k kind, label string) string {
	return strconv.Itoa(int(k)) + "|" + normLabel(label)
}

// normLabel upper-cases a label and collapses its white space.
func normLabel(s string) string {
	return strings.Join(strings.Fields(strings.ToUpper(s)), " ")
}

// hwmonInputRE matches the hwmon files read: <type><channel>_input.
var hwmonInputRE = regexp.MustCompile(`^(temp|in|curr|power|fan)([0-9]{1,3})_input$`)

// hwmonKind gives the kind and unit of a hwmon channel type.
var hwmonKind = map[string]sensor{
	"temp":  {kind: kindTemperature, q: millicelsius},
	"in":    {kind: kindVoltage, q: millivolts},
	"curr":  {kind: kindCurrent, q: milliamperes},
	"power": {kind: kindPower, q: microwatts},
	"fan":   {kind: kindFan, q: rpm},
}

// hwmonSensor names the hwmon channel prefix (e.g. "temp4") of type typ.
// label is its *_label text ("" when there is none); xmcLayout says the
// device follows the XMC layout (its name ends in _user or _mgmt). ok is
// false for a channel that is not exported.
func hwmonSensor(typ, prefix, label string, xmcLayout bool) (sensor, bool) {
	base := hwmonKind[typ]
	if label != "" {
		if hwmonSkippedLabels[normLabel(label)] {
			return sensor{}, false
		}
		if s, ok := hwmonByLabel[labelKey(base.kind, label)]; ok {
			return s, true
		}
		if base.kind == kindPower {
			return sensor{}, false // only the board power is exported
		}
		id := sanitizeID(strings.TrimSuffix(normLabel(label), " CURRENT"))
		if id == "" {
			return sensor{}, false
		}
		return sensor{base.kind, id, base.q}, true
	}
	if !xmcLayout {
		return sensor{}, false
	}
	ch, ok := hwmonChannels[prefix]
	if !ok || ch.sensor.kind != base.kind {
		return sensor{}, false
	}
	return ch.sensor, true
}

var nonIDRE = regexp.MustCompile(`[^a-z0-9]+`)

// sanitizeID turns a free label into a sensor ID: lower case, runs of other
// characters as one underscore.
func sanitizeID(s string) string {
	return strings.Trim(nonIDRE.ReplaceAllString(strings.ToLower(s), "_"), "_")
}
