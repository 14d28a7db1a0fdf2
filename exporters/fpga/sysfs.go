package fpga

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Sources of readings, the source label of the read-errors counter.
const (
	sourceSysfs  = "sysfs"
	sourceXbutil = "xbutil"
)

// readError is a value or file that could not be used. device is the card's
// PCI address, "" when the error concerns no card; key identifies the
// error's origin (a file, a command) for logging each once.
type readError struct {
	device, source, key string
	err                 error
}

func (e readError) Error() string { return e.err.Error() }

// Size limits of what is read from sysfs: a sensor file holds one number,
// kds_custat_raw a line per compute unit.
const (
	maxSysfsFile = 4096
	maxCUStat    = 1 << 20
)

// errTooLarge is wrapped when a file exceeds its limit.
var errTooLarge = errors.New("file too large")

// readFile reads a sysfs file of at most limit bytes. A missing file gives
// an error matching fs.ErrNotExist.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return b, nil
}

// sysfsCard reads one card's user function directory.
type sysfsCard struct {
	dir  string
	card *Card
	errs []readError
}

func (r *sysfsCard) fail(path string, err error) {
	r.errs = append(r.errs, readError{device: r.card.BDF, source: sourceSysfs, key: path,
		err: fmt.Errorf("read %s: %w", path, err)})
}

// read reads a file; a missing file gives ok false and no error.
func (r *sysfsCard) read(path string, limit int64) ([]byte, bool) {
	b, err := readFile(path, limit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false
	case err != nil:
		r.fail(path, err)
		return nil, false
	}
	return b, true
}

// text reads an identity file; "" when missing or bad.
func (r *sysfsCard) text(path string) string {
	b, ok := r.read(path, maxSysfsFile)
	if !ok {
		return ""
	}
	s, err := parseText(string(b))
	if err != nil {
		r.fail(path, err)
	}
	return s
}

// reading reads a sensor file into the card unless the card already has
// the sensor.
func (r *sysfsCard) reading(path string, s sensor) {
	if r.card.has(s) {
		return
	}
	b, ok := r.read(path, maxSysfsFile)
	if !ok {
		return
	}
	v, present, err := parseSysfsReading(b, s.q)
	switch {
	case err != nil:
		r.fail(path, err)
	case present:
		r.card.set(s, v)
	}
}

// firstMatch returns the first path, in name order, matching a glob under
// dir ("rom.*"), or "".
func firstMatch(dir, pattern string) string {
	m, _ := filepath.Glob(filepath.Join(dir, pattern)) // the pattern is constant and valid
	if len(m) == 0 {
		return ""
	}
	slices.Sort(m)
	return m[0]
}

// readSysfs finds the XRT user functions under root (bus/pci/devices/*)
// and reads each card. A root without PCI devices gives no cards and no
// error.
func readSysfs(root string) ([]*Card, []readError) {
	dir := filepath.Join(root, "bus", "pci", "devices")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []readError{{source: sourceSysfs, key: dir, err: fmt.Errorf("list PCI devices: %w", err)}}
	}
	var (
		cards []*Card
		errs  []readError
	)
	for _, e := range entries {
		bdf, err := normBDF(e.Name())
		if err != nil || bdf != e.Name() {
			continue // not a PCI function
		}
		path := filepath.Join(dir, e.Name())
		if !isUserPF(path) {
			continue
		}
		r := &sysfsCard{dir: path, card: newCard(bdf)}
		r.readCard()
		cards = append(cards, r.card)
		errs = append(errs, r.errs...)
	}
	return cards, errs
}

// isUserPF reports whether a PCI function is an XRT user function: it has
// the user_pf attribute xocl creates, or is bound to xocl.
func isUserPF(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "user_pf")); err == nil {
		return true
	}
	target, err := os.Readlink(filepath.Join(dir, "driver"))
	return err == nil && filepath.Base(target) == "xocl"
}

// readCard reads the card: identity, XMC sensors, then hwmon for what the
// XMC did not give, then the compute units.
func (r *sysfsCard) readCard() {
	c := r.card
	if rom := firstMatch(r.dir, "rom.*"); rom != "" {
		c.Shell = r.text(filepath.Join(rom, "VBNV"))
	}
	if b, ok := r.read(filepath.Join(r.dir, "xclbinuuid"), maxSysfsFile); ok {
		u, err := parseUUID(string(b))
		if err != nil {
			r.fail(filepath.Join(r.dir, "xclbinuuid"), err)
		}
		c.XclbinUUID = u
	}
	if xmc := firstMatch(r.dir, "xmc.*"); xmc != "" {
		r.readXMC(xmc)
	}
	r.readHwmon()
	r.readCUs()
	c.Model = modelOf(c.Shell, c.Board)
}

// readXMC reads the XMC subdevice's sensor and identity files.
func (r *sysfsCard) readXMC(dir string) {
	names := make([]string, 0, len(xmcFiles))
	for name := range xmcFiles {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		r.reading(filepath.Join(dir, name), xmcFiles[name])
	}
	r.card.Serial = r.text(filepath.Join(dir, xmcSerialFile))
	r.card.Board = r.text(filepath.Join(dir, xmcBoardFile))
}

// readHwmon reads the hwmon devices of the user function, in name order,
// for the sensors the XMC files did not give.
func (r *sysfsCard) readHwmon() {
	devs, _ := filepath.Glob(filepath.Join(r.dir, "hwmon", "hwmon*"))
	slices.Sort(devs)
	for _, dev := range devs {
		name := r.text(filepath.Join(dev, "name"))
		xmcLayout := strings.HasSuffix(name, "_user") || strings.HasSuffix(name, "_mgmt")
		if xmcLayout && r.card.Shell == "" {
			r.card.Shell = name[:len(name)-len("_user")]
		}
		entries, err := os.ReadDir(dev)
		if err != nil {
			r.fail(dev, err)
			continue
		}
		for _, e := range entries {
			m := hwmonInputRE.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			prefix := m[1] + m[2]
			label := r.text(filepath.Join(dev, prefix+"_label"))
			if s, ok := hwmonSensor(m[1], prefix, label, xmcLayout); ok {
				r.reading(filepath.Join(dev, e.Name()), s)
			}
		}
	}
}

// readCUs reads kds_custat_raw.
func (r *sysfsCard) readCUs() {
	path := filepath.Join(r.dir, "kds_custat_raw")
	b, ok := r.read(path, maxCUStat)
	if !ok {
		return
	}
	cus, errs := parseCUStat(b)
	for _, err := range errs {
		r.fail(path, err)
	}
	r.card.ComputeUnits = cus
}
