package fpga

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// This file reads the JSON of `xbutil examine -f JSON` (`xrt-smi` in newer
// XRT). Boost's property tree writes every scalar as a string ("57",
// "12.176", "true"), "N/A" for unknown values, an empty array as "" and a
// missing sensor list as {"msg": "No sensors present"}; a section of one
// device may be missing or of an unexpected shape. Each section is decoded
// on its own, so a bad one costs its values, not the document.

// xstr is a JSON scalar as text. It accepts strings, numbers, booleans and
// null (as ""); an object or array reads as notScalar, which every parser of
// values rejects. Its decoding never fails.
type xstr string

// notScalar is the text of an object or array found where a value was
// expected.
const notScalar = "\x00{…}"

// errNotScalar is wrapped when an object or array stands for a value.
var errNotScalar = fmt.Errorf("%w: an object or list where a value was expected", ErrBadValue)

func (s *xstr) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0, bytes.Equal(b, []byte("null")):
		*s = ""
	case b[0] == '{', b[0] == '[':
		*s = notScalar
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			*s = ""
			return nil
		}
		*s = xstr(v)
	default:
		*s = xstr(b)
	}
	return nil
}

// present reads an "is_present" flag: absent means present.
func (s xstr) present() bool { return s != "false" && s != "0" }

// xbDevice is one element of "devices".
type xbDevice struct {
	DeviceID       xstr            `json:"device_id"`
	Thermals       json.RawMessage `json:"thermals"`
	Electrical     json.RawMessage `json:"electrical"`
	Mechanical     json.RawMessage `json:"mechanical"`
	Platforms      json.RawMessage `json:"platforms"`
	DynamicRegions json.RawMessage `json:"dynamic_regions"`
}

type xbThermal struct {
	LocationID xstr `json:"location_id"`
	TempC      xstr `json:"temp_C"`
	IsPresent  xstr `json:"is_present"`
}

type xbElectrical struct {
	PowerRails json.RawMessage `json:"power_rails"`
	PowerWatts xstr            `json:"power_consumption_watts"`
}

type xbReading struct {
	Volts     xstr `json:"volts"`
	Amps      xstr `json:"amps"`
	IsPresent xstr `json:"is_present"`
}

type xbRail struct {
	ID      xstr            `json:"id"`
	Voltage json.RawMessage `json:"voltage"`
	Current json.RawMessage `json:"current"`
}

type xbMechanical struct {
	Fans json.RawMessage `json:"fans"`
}

type xbFan struct {
	LocationID xstr `json:"location_id"`
	SpeedRPM   xstr `json:"speed_rpm"`
	IsPresent  xstr `json:"is_present"`
}

type xbPlatform struct {
	StaticRegion struct {
		VBNV     xstr `json:"vbnv"`
		FPGAName xstr `json:"fpga_name"`
	} `json:"static_region"`
	Controller struct {
		CMC struct {
			Serial xstr `json:"serial_number"`
		} `json:"card_mgmt_controller"`
	} `json:"controller"`
}

type xbRegion struct {
	XclbinUUID   xstr            `json:"xclbin_uuid"`
	ComputeUnits json.RawMessage `json:"compute_units"`
}

type xbCU struct {
	Name  xstr `json:"name"`
	Usage xstr `json:"usage"`
}

// errShape is wrapped when a JSON section has an unexpected shape.
var errShape = errors.New("unexpected JSON shape")

// isAbsent reports whether a section is missing: no value, null, or a
// string (Boost's "" for an empty tree, or "N/A").
func isAbsent(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null")) || raw[0] == '"'
}

// decodeObject decodes an object section into v. ok is false when the
// section is absent or is not an object (the latter with an error).
func decodeObject(raw json.RawMessage, v any) (ok bool, err error) {
	if isAbsent(raw) {
		return false, nil
	}
	if bytes.TrimSpace(raw)[0] != '{' {
		return false, fmt.Errorf("%w: want an object", errShape)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("%w: %w", errShape, err)
	}
	return true, nil
}

// decodeList returns the elements of a list section. An absent section, a
// "" and an object (Boost's {"msg": "No sensors present"}, or a tree whose
// children have names) give their object-valued members, possibly none.
func decodeList(raw json.RawMessage) ([]json.RawMessage, error) {
	if isAbsent(raw) {
		return nil, nil
	}
	switch bytes.TrimSpace(raw)[0] {
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%w: %w", errShape, err)
		}
		return list, nil
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("%w: %w", errShape, err)
		}
		var list []json.RawMessage
		for _, v := range obj {
			if v = bytes.TrimSpace(v); len(v) > 0 && v[0] == '{' {
				list = append(list, v)
			}
		}
		return list, nil
	}
	return nil, fmt.Errorf("%w: want a list", errShape)
}

// maxDevices bounds the devices of one document.
const maxDevices = 256

// ParseXbutil reads the JSON `xbutil examine -f JSON` (or `xrt-smi`)
// writes: one card per element of "devices", with its temperatures,
// power rails, power, fans, platform identity and, when the document has
// a dynamic-regions report, the xclbin and compute units. Values it cannot
// use are left out, each with an error; a document that is not JSON gives
// no card and one error.
func ParseXbutil(data []byte) ([]*Card, []error) {
	var doc struct {
		Devices json.RawMessage `json:"devices"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, []error{fmt.Errorf("xbutil JSON: %w", err)}
	}
	elems, err := decodeList(doc.Devices)
	if err != nil {
		return nil, []error{fmt.Errorf("xbutil JSON devices: %w", err)}
	}
	var (
		cards []*Card
		errs  []error
		seen  = map[string]bool{}
	)
	for i, raw := range elems {
		if i >= maxDevices {
			errs = append(errs, fmt.Errorf("xbutil JSON: more than %d devices", maxDevices))
			break
		}
		var d xbDevice
		if _, err := decodeObject(raw, &d); err != nil {
			errs = append(errs, fmt.Errorf("xbutil JSON devices[%d]: %w", i, err))
			continue
		}
		bdf, err := normBDF(string(d.DeviceID))
		if err == nil && seen[bdf] {
			err = fmt.Errorf("%w: device %s listed twice", ErrBadValue, bdf)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("xbutil JSON devices[%d].device_id: %w", i, err))
			continue
		}
		seen[bdf] = true
		p := &xbParser{card: newCard(bdf)}
		p.parse(&d)
		cards = append(cards, p.card)
		errs = append(errs, p.errs...)
	}
	return cards, errs
}

// xbParser reads one device.
type xbParser struct {
	card *Card
	errs []error
}

func (p *xbParser) fail(where string, err error) {
	p.errs = append(p.errs, &DeviceError{Device: p.card.BDF, Err: fmt.Errorf("xbutil JSON %s: %w", where, err)})
}

// DeviceError is an error about one card's data.
type DeviceError struct {
	Device string // the card's PCI address
	Err    error
}

func (e *DeviceError) Error() string { return e.Device + ": " + e.Err.Error() }
func (e *DeviceError) Unwrap() error { return e.Err }

func (p *xbParser) parse(d *xbDevice) {
	p.thermals(d.Thermals)
	p.electrical(d.Electrical)
	p.mechanical(d.Mechanical)
	p.platforms(d.Platforms)
	p.regions(d.DynamicRegions)
	p.card.Model = modelOf(p.card.Shell, p.card.Board)
}

// list decodes a list section, each element into a new T; bad elements
// are skipped with an error.
func list[T any](p *xbParser, where string, raw json.RawMessage, each func(int, *T)) {
	elems, err := decodeList(raw)
	if err != nil {
		p.fail(where, err)
		return
	}
	for i, e := range elems {
		var v T
		if _, err := decodeObject(e, &v); err != nil {
			p.fail(where+"["+strconv.Itoa(i)+"]", err)
			continue
		}
		each(i, &v)
	}
}

// value records a reading given as a string, unless absent or bad.
func (p *xbParser) value(where string, s sensor, text xstr) {
	v, ok, err := parseJSONReading(string(text), s.q)
	switch {
	case err != nil:
		p.fail(where, err)
	case ok:
		p.card.set(s, v)
	}
}

// id validates a sensor ID: the JSON's ID, sanitised the way hwmon labels
// are, so that it is a clean label value.
func (p *xbParser) id(where string, raw xstr) (string, bool) {
	id := sanitizeID(string(raw))
	if id == "" {
		p.fail(where, fmt.Errorf("%w: no sensor ID", ErrBadValue))
		return "", false
	}
	return id, true
}

func (p *xbParser) thermals(raw json.RawMessage) {
	list(p, "thermals", raw, func(i int, t *xbThermal) {
		where := "thermals[" + strconv.Itoa(i) + "]"
		if !t.IsPresent.present() {
			return
		}
		if id, ok := p.id(where, t.LocationID); ok {
			p.value(where+".temp_C", sensor{kindTemperature, id, degrees}, t.TempC)
		}
	})
}

func (p *xbParser) electrical(raw json.RawMessage) {
	var e xbElectrical
	ok, err := decodeObject(raw, &e)
	if err != nil {
		p.fail("electrical", err)
	}
	if !ok {
		return
	}
	p.value("electrical.power_consumption_watts", sensor{kindPower, "", watts}, e.PowerWatts)
	list(p, "electrical.power_rails", e.PowerRails, func(i int, r *xbRail) {
		where := "electrical.power_rails[" + strconv.Itoa(i) + "]"
		id, ok := p.id(where, r.ID)
		if !ok {
			return
		}
		var v, c xbReading
		if _, err := decodeObject(r.Voltage, &v); err != nil {
			p.fail(where+".voltage", err)
		} else if v.IsPresent.present() {
			p.value(where+".voltage.volts", sensor{kindVoltage, id, volts}, v.Volts)
		}
		if _, err := decodeObject(r.Current, &c); err != nil {
			p.fail(where+".current", err)
		} else if c.IsPresent.present() {
			p.value(where+".current.amps", sensor{kindCurrent, id, amperes}, c.Amps)
		}
	})
}

func (p *xbParser) mechanical(raw json.RawMessage) {
	var m xbMechanical
	ok, err := decodeObject(raw, &m)
	if err != nil {
		p.fail("mechanical", err)
	}
	if !ok {
		return
	}
	list(p, "mechanical.fans", m.Fans, func(i int, f *xbFan) {
		where := "mechanical.fans[" + strconv.Itoa(i) + "]"
		if !f.IsPresent.present() {
			return
		}
		if id, ok := p.id(where, f.LocationID); ok {
			p.value(where+".speed_rpm", sensor{kindFan, id, fanRPM}, f.SpeedRPM)
		}
	})
}

func (p *xbParser) platforms(raw json.RawMessage) {
	list(p, "platforms", raw, func(i int, pl *xbPlatform) {
		where := "platforms[" + strconv.Itoa(i) + "]"
		p.text(where+".static_region.vbnv", &p.card.Shell, pl.StaticRegion.VBNV)
		p.text(where+".static_region.fpga_name", &p.card.FPGAPart, pl.StaticRegion.FPGAName)
		p.text(where+".controller.card_mgmt_controller.serial_number", &p.card.Serial, pl.Controller.CMC.Serial)
	})
}

// text sets an identity field from the first element that has it.
func (p *xbParser) text(where string, dst *string, raw xstr) {
	if *dst != "" {
		return
	}
	s, err := parseText(string(raw))
	if err != nil {
		p.fail(where, err)
		return
	}
	*dst = s
}

func (p *xbParser) regions(raw json.RawMessage) {
	seen := map[string]bool{}
	list(p, "dynamic_regions", raw, func(i int, r *xbRegion) {
		where := "dynamic_regions[" + strconv.Itoa(i) + "]"
		if p.card.XclbinUUID == "" {
			u, err := parseUUID(string(r.XclbinUUID))
			if err != nil {
				p.fail(where+".xclbin_uuid", err)
			}
			p.card.XclbinUUID = u
		}
		list(p, where+".compute_units", r.ComputeUnits, func(j int, cu *xbCU) {
			w := where + ".compute_units[" + strconv.Itoa(j) + "]"
			name, err := cuName(string(cu.Name))
			if err == nil && seen[name] {
				err = fmt.Errorf("%w: compute unit %s listed twice", ErrBadValue, quote(name))
			}
			if err == nil && len(p.card.ComputeUnits) >= maxComputeUnits {
				err = fmt.Errorf("%w: more than %d compute units", ErrBadValue, maxComputeUnits)
			}
			if err != nil {
				p.fail(w, err)
				return
			}
			usage, err := strconv.ParseUint(string(cu.Usage), 10, 64)
			if err != nil {
				p.fail(w+".usage", fmt.Errorf("%w: %s is not a count", ErrBadValue, quote(string(cu.Usage))))
				return
			}
			seen[name] = true
			p.card.ComputeUnits = append(p.card.ComputeUnits, ComputeUnit{Name: name, Usage: usage})
		})
	})
}
