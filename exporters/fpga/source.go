// Package fpga is the exporter's source for AMD/Xilinx Alveo FPGA cards
// driven by XRT. It reads each card's user PCI function in sysfs (the XMC
// sensor files, hwmon, kds_custat_raw compute-unit counters, the shell's
// VBNV and the loaded xclbin) and, when available, the JSON of
// `xbutil examine` (`xrt-smi` in newer XRT), which also covers cards whose
// sensors sysfs does not show. A poller keeps the latest snapshot; the
// collector only sends it. The cards are published to the node inventory
// under the device plugin's IDs, their user functions' PCI addresses.
// docs/fpga.md describes what is read and how failures are handled.
package fpga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/node"
)

// Defaults of Options.
const (
	DefaultSysfsRoot      = "/sys"
	DefaultInterval       = 15 * time.Second
	DefaultCommandTimeout = 10 * time.Second
	// DefaultStaleIntervals is how many intervals xbutil data is kept
	// when xbutil stops answering, unless Options.StaleAfter says.
	DefaultStaleIntervals = 4
)

// XbutilOff in Options.XbutilSource disables xbutil.
const XbutilOff = "off"

// InventorySource is the name the cards are published under in the node
// inventory.
const InventorySource = "fpga"

// Options configure a Source.
type Options struct {
	// Node is the node label of every series; the host name when empty.
	Node string
	// SysfsRoot is where sysfs is mounted (DefaultSysfsRoot when empty);
	// cards are looked for under <SysfsRoot>/bus/pci/devices.
	SysfsRoot string
	// XbutilSource says where xbutil's JSON comes from:
	//   - "" (default): xrt-smi, else xbutil, found on the PATH or in
	//     /opt/xilinx/xrt/bin; sysfs only when neither is installed;
	//   - "off" (XbutilOff): sysfs only;
	//   - a path ending in ".json": a file read at every poll (written by
	//     another job, or a fixture);
	//   - any other text: a command line, split on white space. It is run
	//     once per card found in sysfs, followed by "examine -d <bdf> -r
	//     thermal electrical mechanical platform -f JSON -o <file>"; when it
	//     contains {bdf} or {out} it is run as written with those replaced.
	XbutilSource string
	// Interval between polls (DefaultInterval when 0).
	Interval time.Duration
	// CommandTimeout bounds each xbutil run (DefaultCommandTimeout when 0).
	CommandTimeout time.Duration
	// StaleAfter is how long a card's last good xbutil data is still
	// served when xbutil fails (DefaultStaleIntervals × Interval when 0).
	StaleAfter time.Duration
	// Inventory, when set, receives the cards after every poll.
	Inventory *node.Inventory
	// Logger receives read errors, each once until it changes or
	// recovers; nil discards.
	Logger *slog.Logger
}

// Source polls the node's FPGA cards and serves the latest snapshot. It
// implements collector.Collector.
type Source struct {
	node       string
	root       string
	interval   time.Duration
	staleAfter time.Duration
	xbFile     string  // xbutil JSON file, or ""
	xbRun      *runner // xbutil command, or nil
	inv        *node.Inventory
	logger     *slog.Logger
	now        func() time.Time

	snap atomic.Pointer[snapshot]

	pollMu   sync.Mutex // one poll at a time; guards the fields below
	errCount map[errKey]float64
	xbCache  map[string]xbEntry
	logged   map[string]logEntry

	runMu  sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// errKey is a read-errors series.
type errKey struct{ device, source string }

// xbEntry is a card's last good xbutil data.
type xbEntry struct {
	card *Card
	at   time.Time
}

// logEntry is an error already logged.
type logEntry struct{ source, msg string }

// snapshot is what a poll found: the merged cards (sorted by PCI address)
// and the read-error counts so far.
type snapshot struct {
	cards   []*Card
	errors  map[errKey]float64
	xbutil  bool  // an xbutil source is configured
	failure error // the poll could not look for cards at all
}

// New returns a source. It reads nothing yet: Start polls in the
// background, Poll polls once. Only invalid options are errors; a node
// without FPGAs gives a source that reports nothing.
func New(opts Options) (*Source, error) {
	if opts.Interval < 0 || opts.CommandTimeout < 0 || opts.StaleAfter < 0 {
		return nil, errors.New("fpga: negative interval, command timeout or stale-after duration")
	}
	s := &Source{node: opts.Node, root: opts.SysfsRoot, interval: opts.Interval, staleAfter: opts.StaleAfter,
		inv: opts.Inventory, logger: opts.Logger, now: time.Now,
		errCount: map[errKey]float64{}, xbCache: map[string]xbEntry{}, logged: map[string]logEntry{}}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("fpga: no node name and no host name: %w", err)
		}
		s.node = h
	}
	if !utf8.ValidString(s.node) {
		return nil, fmt.Errorf("fpga: node name %q is not UTF-8", s.node)
	}
	if s.root == "" {
		s.root = DefaultSysfsRoot
	}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	if s.staleAfter == 0 {
		s.staleAfter = DefaultStaleIntervals * s.interval
	}
	timeout := opts.CommandTimeout
	if timeout == 0 {
		timeout = DefaultCommandTimeout
	}
	xb := strings.TrimSpace(opts.XbutilSource)
	switch {
	case strings.EqualFold(xb, XbutilOff):
	case xb == "":
		if p := findXbutil(); p != "" {
			s.xbRun = &runner{argv: []string{p}, timeout: timeout}
		} else {
			s.logger.Info("neither xrt-smi nor xbutil found; reading FPGA cards from sysfs only")
		}
	case strings.HasSuffix(strings.ToLower(xb), ".json") && !strings.ContainsAny(xb, " \t"):
		s.xbFile = xb
	default:
		s.xbRun = &runner{argv: strings.Fields(xb), timeout: timeout}
	}
	return s, nil
}

// Start polls now and then every interval until ctx ends or Close is
// called. A second Start, or a Start after Close, does nothing.
func (s *Source) Start(ctx context.Context) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.done != nil {
		return
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.loop(ctx, s.done)
}

func (s *Source) loop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		_ = s.Poll(ctx) // errors are counted and logged by Poll
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the polling (killing a running xbutil) and removes the
// cards from the inventory. The last snapshot stays readable.
func (s *Source) Close() error {
	s.runMu.Lock()
	cancel, done := s.cancel, s.done
	s.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if s.inv != nil {
		s.inv.SetDevices(InventorySource, nil)
	}
	return nil
}

// Poll reads the cards once: sysfs first, published at once, then xbutil,
// which may take up to the command timeout per card. It returns ctx's
// error when ctx ended; read errors are counted and logged, not returned.
func (s *Source) Poll(ctx context.Context) error {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	cards, errs := readSysfs(s.root)
	var failure error
	for _, e := range errs {
		if e.device == "" {
			failure = e.err
		}
	}
	s.note(sourceSysfs, errs)
	s.publish(cards, failure)
	if s.xbFile == "" && s.xbRun == nil {
		return ctx.Err()
	}
	var xbFailure error
	if s.xbFile != "" {
		xbFailure = s.readXbutilFile()
	} else {
		s.runXbutil(ctx, cards)
	}
	if failure == nil && len(cards) == 0 {
		failure = xbFailure
	}
	s.publish(cards, failure)
	return ctx.Err()
}

// readXbutilFile replaces the xbutil data by the file's; on failure the
// previous data stays until stale, and the error is returned.
func (s *Source) readXbutilFile() error {
	data, err := readFile(s.xbFile, maxJSON)
	if err != nil {
		err = fmt.Errorf("read %s: %w", s.xbFile, err)
		s.note(sourceXbutil, []readError{{source: sourceXbutil, key: s.xbFile, err: err}})
		return err
	}
	cards, perrs := ParseXbutil(data)
	errs := s.xbErrors("", s.xbFile, perrs)
	s.note(sourceXbutil, errs)
	if len(cards) == 0 && len(errs) > 0 && errs[0].device == "" {
		return fmt.Errorf("%s: %w", s.xbFile, errs[0].err)
	}
	now := s.now()
	clear(s.xbCache)
	for _, c := range cards {
		s.xbCache[c.BDF] = xbEntry{card: c, at: now}
	}
	return nil
}

// runXbutil runs the command for each sysfs card. A card whose run fails
// keeps its previous data until stale.
func (s *Source) runXbutil(ctx context.Context, cards []*Card) {
	present := map[string]bool{}
	var errs []readError
	for _, c := range cards {
		present[c.BDF] = true
		if ctx.Err() != nil {
			break
		}
		data, err := s.xbRun.run(ctx, c.BDF)
		key := "xbutil " + c.BDF
		if err != nil {
			errs = append(errs, readError{device: c.BDF, source: sourceXbutil, key: key, err: err})
		}
		if data == nil {
			continue
		}
		parsed, perrs := ParseXbutil(data)
		errs = append(errs, s.xbErrors(c.BDF, key, perrs)...)
		if got := pick(parsed, c.BDF); got != nil {
			s.xbCache[c.BDF] = xbEntry{card: got, at: s.now()}
		} else if len(perrs) == 0 {
			errs = append(errs, readError{device: c.BDF, source: sourceXbutil, key: key,
				err: fmt.Errorf("xbutil JSON has no device %s", c.BDF)})
		}
	}
	for bdf := range s.xbCache {
		if !present[bdf] {
			delete(s.xbCache, bdf)
		}
	}
	s.note(sourceXbutil, errs)
}

// pick returns the card of bdf, or the only card of a document about one
// device.
func pick(cards []*Card, bdf string) *Card {
	for _, c := range cards {
		if c.BDF == bdf {
			return c
		}
	}
	if len(cards) == 1 {
		c := cards[0]
		c.BDF = bdf
		return c
	}
	return nil
}

// xbErrors attributes ParseXbutil's errors to cards: a DeviceError to its
// device, others to device (the card the command ran for, or none).
func (s *Source) xbErrors(device, key string, errs []error) []readError {
	out := make([]readError, 0, len(errs))
	for _, err := range errs {
		e := readError{device: device, source: sourceXbutil, key: key + ": " + err.Error(), err: err}
		var de *DeviceError
		if errors.As(err, &de) && device == "" {
			e.device = de.Device
		}
		out = append(out, e)
	}
	return out
}

// note counts a poll's errors of one source and logs each once: again only
// when its message changes, and "recovered" once it is gone.
func (s *Source) note(source string, errs []readError) {
	seen := map[string]bool{}
	for _, e := range errs {
		s.errCount[errKey{e.device, e.source}]++
		seen[e.key] = true
		if prev, ok := s.logged[e.key]; ok && prev.msg == e.err.Error() {
			continue
		}
		s.logged[e.key] = logEntry{source: source, msg: e.err.Error()}
		s.logger.Warn("FPGA read failed", "source", e.source, "device", e.device, "err", e.err)
	}
	for key, l := range s.logged {
		if l.source == source && !seen[key] {
			delete(s.logged, key)
			s.logger.Info("FPGA read recovered", "source", source, "what", key)
		}
	}
}

// publish merges the sysfs cards with the fresh xbutil data into a new
// snapshot, and the inventory.
func (s *Source) publish(sysfs []*Card, failure error) {
	now := s.now()
	byBDF := map[string]*Card{}
	var cards []*Card
	for _, c := range sysfs {
		c := c.clone()
		byBDF[c.BDF] = c
		cards = append(cards, c)
	}
	for bdf, e := range s.xbCache {
		if now.Sub(e.at) > s.staleAfter {
			continue
		}
		if c, ok := byBDF[bdf]; ok {
			c.fill(e.card)
		} else {
			cards = append(cards, e.card.clone())
		}
	}
	for _, c := range cards {
		c.Model = modelOf(c.Shell, c.Board)
	}
	slices.SortFunc(cards, func(a, b *Card) int { return strings.Compare(a.BDF, b.BDF) })
	errs := make(map[errKey]float64, len(s.errCount))
	for k, v := range s.errCount {
		errs[k] = v
	}
	s.snap.Store(&snapshot{cards: cards, errors: errs, xbutil: s.xbFile != "" || s.xbRun != nil, failure: failure})
	if s.inv != nil {
		s.inv.SetDevices(InventorySource, devices(cards))
	}
}

// devices turns cards into inventory devices: ID and GPU the user
// function's PCI address, class fpga, weight one card.
func devices(cards []*Card) []node.Device {
	if len(cards) == 0 {
		return nil
	}
	out := make([]node.Device, 0, len(cards))
	for _, c := range cards {
		out = append(out, node.Device{ID: c.BDF, Class: accounting.ClassFPGA, GPU: c.BDF, Model: c.Model,
			GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000})
	}
	return out
}

// Cards returns a copy of the cards of the latest poll, sorted by PCI
// address; nil before the first poll.
func (s *Source) Cards() []Card {
	snap := s.snap.Load()
	if snap == nil {
		return nil
	}
	out := make([]Card, 0, len(snap.cards))
	for _, c := range snap.cards {
		out = append(out, *c.clone())
	}
	return out
}
