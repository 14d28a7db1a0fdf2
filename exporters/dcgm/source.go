package dcgm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/node"
)

// Defaults of Options.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// InventorySource is the name under which the source publishes activity
// to the node's inventory.
const InventorySource = "dcgm"

// staleAfter is how many intervals a snapshot stays fresh after the poll
// that read it.
const staleAfter = 2

// Options configure a Source.
type Options struct {
	// URL is the node-local dcgm-exporter's metrics endpoint
	// (--dcgm-exporter-url, e.g. http://localhost:9400/metrics). Required.
	URL string
	// Node is the Kubernetes node name, the node label of every series.
	// Required.
	Node string
	// Interval between polls (default DefaultInterval).
	Interval time.Duration
	// Timeout bounds each poll, connection to last byte (default
	// DefaultTimeout).
	Timeout time.Duration
	// MaxBodyBytes bounds a body (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Inventory resolves MIG instances to their device IDs and receives
	// the devices' activity. Nil: MIG instances stay unresolved and no
	// activity is published.
	Inventory *node.Inventory
	// Client makes the requests (default: a client of its own).
	Client *http.Client
	// Logger receives poll failures and recoveries; nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Device is a reading keyed to the node's device identity.
type Device struct {
	// Key is the device's ID: the UUID ("GPU-…") of a whole GPU, the MIG
	// device ID ("MIG-…") of a MIG instance the inventory knows, or
	// "<parent UUID>/gi<N>" for one it does not.
	Key string
	// Resolved is false for a MIG instance the inventory does not know.
	Resolved bool
	// MIGDevices are the IDs of every MIG device (one per compute
	// instance) of the GPU instance, when resolved; Key is the first.
	MIGDevices []string
	Reading
}

// Snapshot is what one successful poll read. It is shared: do not modify.
type Snapshot struct {
	// At is when the poll began.
	At time.Time
	// Devices are sorted as Parsed.Readings are.
	Devices []Device
	// Dropped counts this poll's dropped samples by reason, unresolved
	// MIG instances included.
	Dropped map[string]int
}

// Source polls the node's dcgm-exporter and serves its latest snapshot. It
// implements collector.Collector. It is safe for concurrent use.
type Source struct {
	url      string
	node     string
	interval time.Duration
	timeout  time.Duration
	limit    int64
	inv      *node.Inventory
	client   *http.Client
	logger   *slog.Logger
	now      func() time.Time

	mu      sync.RWMutex
	snap    *Snapshot // the last good one; nil before
	polled  bool      // a poll has ended
	lastErr error     // of the last poll
	loggedE string    // its message, to log each failure once
	dropped map[string]float64

	runMu  sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	closed bool

	afterPoll func(error) // test hook, called at the end of each background poll
}

// New validates opts and returns a Source; nothing is polled before Start
// or Poll.
func New(opts Options) (*Source, error) {
	if err := checkURL(opts.URL); err != nil {
		return nil, err
	}
	if opts.Node == "" {
		return nil, errors.New("dcgm: no node name")
	}
	if opts.Interval < 0 || opts.Timeout < 0 || opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("dcgm: negative interval (%s), timeout (%s) or body limit (%d)",
			opts.Interval, opts.Timeout, opts.MaxBodyBytes)
	}
	s := &Source{url: opts.URL, node: opts.Node, interval: opts.Interval, timeout: opts.Timeout,
		limit: opts.MaxBodyBytes, inv: opts.Inventory, client: opts.Client, logger: opts.Logger, now: opts.Now,
		dropped: map[string]float64{}}
	if s.interval == 0 {
		s.interval = DefaultInterval
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.limit == 0 {
		s.limit = DefaultMaxBodyBytes
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, r := range Reasons() {
		s.dropped[r] = 0
	}
	return s, nil
}

func checkURL(raw string) error {
	if raw == "" {
		return errors.New("dcgm: no dcgm-exporter URL (--dcgm-exporter-url, e.g. http://localhost:9400/metrics)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("dcgm: dcgm-exporter URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("dcgm: dcgm-exporter URL %q: want http(s)://host:port/path", raw)
	}
	return nil
}

// Start polls in the background, at once and then every interval, until
// ctx ends or Close is called.
func (s *Source) Start(ctx context.Context) error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	switch {
	case s.closed:
		return errors.New("dcgm: source closed")
	case s.done != nil:
		return errors.New("dcgm: source already started")
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.loop(ctx, s.done)
	return nil
}

func (s *Source) loop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		err := s.Poll(ctx)
		if s.afterPoll != nil {
			s.afterPoll(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Close stops the background polls and waits for the current one to end.
// The last snapshot is still served.
func (s *Source) Close() error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.closed = true
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
	return nil
}

// Poll reads the dcgm-exporter once, within the timeout, and on success
// replaces the snapshot and publishes activity to the inventory. On failure
// the last snapshot stays, and goes stale two intervals after its poll.
func (s *Source) Poll(ctx context.Context) error {
	at := s.now()
	parsed, err := s.fetch(ctx)
	if err != nil && ctx.Err() != nil {
		return err // shutting down: not the dcgm-exporter's failure
	}
	var snap *Snapshot
	if err == nil {
		snap = s.keyed(parsed, at)
	}
	s.mu.Lock()
	s.polled, s.lastErr = true, err
	if snap != nil {
		if s.snap == nil || !snap.At.Before(s.snap.At) { // concurrent polls: the latest wins
			s.snap = snap
		}
		for r, n := range snap.Dropped {
			s.dropped[r] += float64(n)
		}
	}
	prevErr := s.loggedE
	s.loggedE = ""
	if err != nil {
		s.loggedE = err.Error()
	}
	s.mu.Unlock()
	s.logResult(err, prevErr)
	if err != nil {
		return err
	}
	s.publish(snap)
	return nil
}

// fetch GETs and parses the body.
func (s *Source) fetch(ctx context.Context) (*Parsed, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("dcgm-exporter %s: %w", s.url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	req.Header.Set("User-Agent", "gpuledger-exporter")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dcgm-exporter: get %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, fmt.Errorf("dcgm-exporter: get %s: %s: %s", s.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	p, err := Parse(resp.Body, s.limit)
	if err != nil {
		return nil, fmt.Errorf("dcgm-exporter: read %s: %w", s.url, err)
	}
	return p, nil
}

// migKey is a MIG GPU instance: its parent's UUID and instance ID.
type migKey struct {
	parent string
	gi     int
}

// keyed keys each reading to the node's devices.
func (s *Source) keyed(p *Parsed, at time.Time) *Snapshot {
	migs := s.migIndex()
	snap := &Snapshot{At: at, Devices: make([]Device, 0, len(p.Readings)), Dropped: make(map[string]int, len(p.Dropped)+1)}
	for r, n := range p.Dropped {
		snap.Dropped[r] = n
	}
	for _, rd := range p.Readings {
		d := Device{Key: rd.UUID, Resolved: true, Reading: rd}
		if rd.MIG() {
			d.resolveMIG(migs[migKey{rd.UUID, rd.GPUInstanceID}])
			if !d.Resolved {
				snap.Dropped[ReasonUnresolved]++
			}
		}
		snap.Devices = append(snap.Devices, d)
	}
	return snap
}

// resolveMIG keys a MIG reading to the inventory's devices of its GPU
// instance (sorted by compute instance), or to "<parent>/gi<N>" when none.
func (d *Device) resolveMIG(devs []node.Device) {
	if len(devs) == 0 {
		d.Key, d.Resolved = d.UUID+"/gi"+strconv.Itoa(d.GPUInstanceID), false
		return
	}
	d.Key = devs[0].ID
	for _, nd := range devs {
		d.MIGDevices = append(d.MIGDevices, nd.ID)
	}
	fillEmpty(&d.Profile, devs[0].Profile)
	fillEmpty(&d.GPU, devs[0].GPU)
	fillEmpty(&d.Model, devs[0].Model)
}

// migIndex returns the inventory's MIG devices by GPU instance, each list
// sorted by compute instance.
func (s *Source) migIndex() map[migKey][]node.Device {
	out := map[migKey][]node.Device{}
	if s.inv == nil {
		return out
	}
	for _, d := range s.inv.Devices() {
		if d.Class != accounting.ClassMIG || d.GPUUUID == "" || d.GPUInstanceID < 0 {
			continue
		}
		k := migKey{d.GPUUUID, d.GPUInstanceID}
		out[k] = append(out[k], d)
	}
	for _, devs := range out {
		slices.SortStableFunc(devs, func(a, b node.Device) int { return cmp.Compare(a.ComputeInstanceID, b.ComputeInstanceID) })
	}
	return out
}

// publish sends the snapshot's activity to the inventory: graphics-engine
// activity, or for a whole GPU without it the GPU utilisation. Unresolved
// MIG instances are not published: no device ID names them.
func (s *Source) publish(snap *Snapshot) {
	if s.inv == nil {
		return
	}
	ratios := map[string]float64{}
	for i := range snap.Devices {
		d := &snap.Devices[i]
		v, ok := d.Value(GraphicsActive)
		if !ok && !d.MIG() {
			v, ok = d.Value(GPUUtil)
		}
		if !ok || !d.Resolved {
			continue
		}
		if !d.MIG() {
			ratios[d.Key] = v
			continue
		}
		for _, id := range d.MIGDevices {
			ratios[id] = v
		}
	}
	if len(ratios) > 0 {
		s.inv.SetActivity(InventorySource, snap.At, ratios)
	}
}

// logResult logs a failure once until it changes, and a recovery; prev is
// the previous poll's error message.
func (s *Source) logResult(err error, prev string) {
	switch {
	case err != nil && err.Error() != prev:
		s.logger.Warn("dcgm-exporter poll failed", "url", s.url, "err", err)
	case err == nil && prev != "":
		s.logger.Info("dcgm-exporter poll recovered", "url", s.url)
	}
}

// Latest returns the last good snapshot (nil before the first), and
// whether it is fresh: read by a poll less than two intervals ago.
func (s *Source) Latest() (*Snapshot, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap, s.fresh(s.snap, s.now())
}

func (s *Source) fresh(snap *Snapshot, now time.Time) bool {
	return snap != nil && now.Sub(snap.At) <= staleAfter*s.interval
}
