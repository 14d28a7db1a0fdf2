package fpga

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrBadValue is wrapped by every error about a value that could not be
// used: junk text, "N/A", an empty file, a negative or implausible number.
var ErrBadValue = errors.New("bad value")

// quantity is a kind of reading: how a raw integer of a sysfs file
// converts to base units, and the largest plausible value.
type quantity struct {
	name string
	div  float64 // raw / div = base units
	max  float64 // in base units
}

// Plausibility limits, in base units. A reading above is a sensor or driver
// fault (an all-ones register reads 4294967295), not a measurement.
const (
	maxCelsius = 200
	maxVolts   = 60
	maxAmperes = 1000
	maxWatts   = 1000
	maxRPM     = 100000
)

var (
	celsius      = quantity{"temperature", 1, maxCelsius}    // xmc_*_temp: °C
	millicelsius = quantity{"temperature", 1000, maxCelsius} // hwmon temp*_input
	millivolts   = quantity{"voltage", 1000, maxVolts}       // xmc_*_vol, hwmon in*_input
	milliamperes = quantity{"current", 1000, maxAmperes}     // xmc_*_curr, hwmon curr*_input
	microwatts   = quantity{"power", 1_000_000, maxWatts}    // xmc_power, hwmon power*_input
	rpm          = quantity{"fan speed", 1, maxRPM}          // xmc_fan_rpm, hwmon fan*_input
	volts        = quantity{"voltage", 1, maxVolts}          // xbutil JSON
	amperes      = quantity{"current", 1, maxAmperes}        // xbutil JSON
	watts        = quantity{"power", 1, maxWatts}            // xbutil JSON
	degrees      = quantity{"temperature", 1, maxCelsius}    // xbutil JSON
	fanRPM       = quantity{"fan speed", 1, maxRPM}          // xbutil JSON
)

// trimSysfs removes what the kernel pads a sysfs value with: white space
// and, on some XRT versions, a terminating NUL byte.
func trimSysfs(raw []byte) string {
	return string(bytes.Trim(raw, " \t\r\n\x00"))
}

// parseSysfsInt parses the decimal integer a sysfs sensor file holds.
func parseSysfsInt(raw []byte) (int64, error) {
	s := trimSysfs(raw)
	switch {
	case s == "":
		return 0, fmt.Errorf("%w: empty", ErrBadValue)
	case strings.EqualFold(s, "N/A"):
		return 0, fmt.Errorf("%w: N/A", ErrBadValue)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("%w: %s out of range", ErrBadValue, quote(s))
		}
		return 0, fmt.Errorf("%w: %s is not an integer", ErrBadValue, quote(s))
	}
	return n, nil
}

// parseSysfsReading converts a sysfs sensor file to base units. A reading
// of 0 is how XRT and the XMC say "no such sensor on this card": it gives
// present false and no error. Negative and implausibly large readings are
// errors.
func parseSysfsReading(raw []byte, q quantity) (v float64, present bool, err error) {
	n, err := parseSysfsInt(raw)
	if err != nil {
		return 0, false, err
	}
	switch {
	case n < 0:
		return 0, false, fmt.Errorf("%w: negative %s %d", ErrBadValue, q.name, n)
	case n == 0:
		return 0, false, nil
	}
	v = float64(n) / q.div
	if v > q.max {
		return 0, false, fmt.Errorf("%w: implausible %s %d (above %g in base units)", ErrBadValue, q.name, n, q.max)
	}
	return v, true, nil
}

// parseJSONReading converts an xbutil value, always a decimal string, to a
// float in base units. "" and "N/A" mean absent (no error); NaN, infinities,
// negative and implausibly large values are errors.
func parseJSONReading(s string, q quantity) (v float64, present bool, err error) {
	if s == notScalar {
		return 0, false, errNotScalar
	}
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "N/A") {
		return 0, false, nil
	}
	v, err = strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("%w: %s %s is not a number", ErrBadValue, q.name, quote(s))
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, false, fmt.Errorf("%w: %s %s is not finite", ErrBadValue, q.name, quote(s))
	case v < 0:
		return 0, false, fmt.Errorf("%w: negative %s %s", ErrBadValue, q.name, s)
	case v > q.max:
		return 0, false, fmt.Errorf("%w: implausible %s %s (above %g)", ErrBadValue, q.name, s, q.max)
	}
	return v, true, nil
}

// maxText is the longest identity string (VBNV, serial number, board
// name) accepted.
const maxText = 256

// parseText validates an identity string read from sysfs or xbutil: valid
// UTF-8, printable, at most maxText bytes. "" and "N/A" mean absent.
func parseText(s string) (string, error) {
	if s == notScalar {
		return "", errNotScalar
	}
	s = strings.Trim(s, " \t\r\n\x00")
	if s == "" || strings.EqualFold(s, "N/A") {
		return "", nil
	}
	if len(s) > maxText {
		return "", fmt.Errorf("%w: text of %d bytes (at most %d)", ErrBadValue, len(s), maxText)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: text %s is not UTF-8", ErrBadValue, quote(s))
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "", fmt.Errorf("%w: text %s has unprintable characters", ErrBadValue, quote(s))
		}
	}
	return s, nil
}

// parseUUID validates an xclbin UUID: the xocl form
// "1b2c3d4e-…" (lower case), xbutil's upper-case form, or the zocl/multi-slot
// form "<slot> <uuid>" of which the first line is taken. The all-zero UUID
// (nothing loaded) gives "". The result is lower case.
func parseUUID(raw string) (string, error) {
	if raw == notScalar {
		return "", errNotScalar
	}
	s := strings.Trim(raw, " \t\r\n\x00")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if f := strings.Fields(s); len(f) == 2 {
		s = f[1]
	}
	if s == "" || strings.EqualFold(s, "N/A") {
		return "", nil
	}
	s = strings.ToLower(s)
	if !isUUID(s) {
		return "", fmt.Errorf("%w: %s is not a UUID", ErrBadValue, quote(s))
	}
	if strings.Trim(s, "0-") == "" {
		return "", nil
	}
	return s, nil
}

// isUUID reports whether s is 8-4-4-4-12 lower-case hexadecimal digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// ComputeUnit is one compute unit of the loaded xclbin and how many
// executions it completed since the xclbin was loaded.
type ComputeUnit struct {
	Name  string // "<kernel>:<instance>", e.g. "vadd:vadd_1"
	Usage uint64
}

// maxComputeUnits bounds what one card may report (XRT's MAX_CUS is 128
// per slot).
const maxComputeUnits = 1024

// parseCUStat parses kds_custat_raw. Each line is one compute unit, either
// "<idx>,<kernel>:<instance>,<address>,<status>,<usage>" (XRT 2020.x–2021.x)
// or "<slot>,<idx>,<kernel>:<instance>,<address>,<status>,<usage>" (XRT
// 2022.1 and later). A bad line is skipped with an error; the others are kept.
func parseCUStat(raw []byte) ([]ComputeUnit, []error) {
	var (
		cus  []ComputeUnit
		errs []error
		seen = map[string]bool{}
	)
	for n, line := range strings.Split(trimSysfs(raw), "\n") {
		line = strings.Trim(line, " \t\r\x00")
		if line == "" {
			continue
		}
		cu, err := parseCULine(line)
		if err == nil && seen[cu.Name] {
			err = fmt.Errorf("%w: compute unit %s listed twice", ErrBadValue, quote(cu.Name))
		}
		if err == nil && len(cus) >= maxComputeUnits {
			err = fmt.Errorf("%w: more than %d compute units", ErrBadValue, maxComputeUnits)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n+1, err))
			continue
		}
		seen[cu.Name] = true
		cus = append(cus, cu)
	}
	return cus, errs
}

func parseCULine(line string) (ComputeUnit, error) {
	f := strings.Split(line, ",")
	switch len(f) {
	case 5:
	case 6:
		if _, err := strconv.ParseUint(strings.TrimSpace(f[0]), 10, 32); err != nil {
			return ComputeUnit{}, fmt.Errorf("%w: slot %s is not a number", ErrBadValue, quote(f[0]))
		}
		f = f[1:]
	default:
		return ComputeUnit{}, fmt.Errorf("%w: %d fields in %s (want 5 or 6)", ErrBadValue, len(f), quote(line))
	}
	if _, err := strconv.ParseUint(strings.TrimSpace(f[0]), 10, 32); err != nil {
		return ComputeUnit{}, fmt.Errorf("%w: index %s is not a number", ErrBadValue, quote(f[0]))
	}
	name, err := cuName(f[1])
	if err != nil {
		return ComputeUnit{}, err
	}
	usage, err := strconv.ParseUint(strings.TrimSpace(f[4]), 10, 64)
	if err != nil {
		return ComputeUnit{}, fmt.Errorf("%w: usage %s of %s is not a count", ErrBadValue, quote(f[4]), quote(name))
	}
	return ComputeUnit{Name: name, Usage: usage}, nil
}

// cuName validates a compute unit's name, "<kernel>:<instance>".
func cuName(s string) (string, error) {
	name, err := parseText(s)
	if err != nil {
		return "", err
	}
	if name == "" || strings.Trim(name, ":") == "" {
		return "", fmt.Errorf("%w: compute unit without a name", ErrBadValue)
	}
	return name, nil
}

// quote shows a bad value in an error, shortened.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strconv.Quote(s)
}
