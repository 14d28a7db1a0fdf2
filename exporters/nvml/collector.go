// Package nvml is the exporter's NVML device source: identity, memory,
// power, energy, temperature, clocks, ECC and utilization of every NVIDIA
// GPU of the node, its MIG instances with their profiles and accounting
// weights, GPM activity where the GPU supports it, and XID error events.
//
// A background poller reads NVML every interval and keeps a snapshot;
// Update only sends the latest snapshot and never calls NVML, so a scrape
// cannot hang on the driver. The poller also publishes the node's GPUs and
// MIG instances, with their weights and activity, to the node.Inventory
// that the attribution collector reads.
//
// Without libnvidia-ml.so.1 (no NVIDIA driver on the node) Open returns a
// collector that fails every Update with ErrUnavailable and retries loading
// the library on every poll: the exporter keeps serving its other sources.
// See docs/nvml.md.
package nvml

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/node"
)

// Source is the name under which the collector publishes devices and
// activity to the inventory.
const Source = "nvml"

// DefaultInterval is the poll interval when Options.Interval is zero.
const DefaultInterval = 10 * time.Second

// ErrUnavailable is returned by Update while NVML cannot be initialised:
// the library is absent (no NVIDIA driver) or the driver is not loaded.
var ErrUnavailable = errors.New("NVML unavailable")

// Options configure a collector.
type Options struct {
	// Node is the Kubernetes node name, the node label of every series.
	Node string
	// Inventory receives the node's GPUs and MIG instances and their
	// activity; nil publishes nothing.
	Inventory *node.Inventory
	// Interval is the poll interval (DefaultInterval when zero). GPM
	// activity is measured over one interval.
	Interval time.Duration
	// StaleAfter is how old the last poll may be before Update fails
	// rather than serve it (three intervals when zero).
	StaleAfter time.Duration
	// EventWait bounds one wait for an XID event, and so how long Close
	// may wait for the event goroutine (one second when zero).
	EventWait time.Duration
	// Logger receives NVML failures, each once; nil discards.
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 3 * o.Interval
	}
	if o.EventWait <= 0 {
		o.EventWait = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Collector is the NVML source. It implements collector.Collector.
type Collector struct {
	lib    nvml.Interface
	opts   Options
	logger *slog.Logger
	errs   *callErrors
	xids   *xidCounter

	mu      sync.RWMutex
	initErr error     // non-nil while NVML is not initialised
	snap    *snapshot // latest poll; nil before the first

	// Owned by the polling goroutine (New sets initialised before it
	// starts; Close reads it after it ended).
	initialised   bool
	eventsStarted bool
	profiles      *profileCache
	gpm           *gpmSampler
	prevDevices   map[int][]node.Device // last devices of each GPU index

	lifeMu  sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// snapshot is one poll's result: the series to send and when it was taken.
type snapshot struct {
	at      time.Time
	err     error // the whole poll failed
	metrics []prometheus.Metric
}

// New returns a collector reading NVML through lib (nvml.New() in
// production, a mock in tests). It initialises lib; when that fails the
// collector is returned degraded (Update fails with ErrUnavailable, Err
// says why, Start keeps retrying), not as an error. The error is for bad
// options only.
func New(lib nvml.Interface, opts Options) (*Collector, error) {
	if lib == nil {
		return nil, errors.New("nvml collector: nil NVML library")
	}
	if opts.Node == "" {
		return nil, errors.New("nvml collector: empty node name")
	}
	opts.defaults()
	c := &Collector{
		lib:         lib,
		opts:        opts,
		logger:      opts.Logger,
		errs:        newCallErrors(opts.Logger),
		xids:        newXIDCounter(),
		profiles:    newProfileCache(),
		prevDevices: map[int][]node.Device{},
	}
	c.gpm = newGPMSampler(lib, c.errs)
	if err := c.tryInit(); err != nil {
		c.logger.Warn("NVML unavailable; the nvml collector reports failure until it loads", "err", err)
	}
	return c, nil
}

// Open returns a collector on the system's NVML library
// (libnvidia-ml.so.1), degraded when it cannot be loaded.
func Open(opts Options) (*Collector, error) {
	return New(nvml.New(), opts)
}

// Err returns why NVML is unavailable, or nil once it is initialised.
func (c *Collector) Err() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.initErr
}

// tryInit initialises NVML once; it records the failure for Update.
func (c *Collector) tryInit() error {
	if c.initialised {
		return nil
	}
	ret := c.lib.Init()
	var err error
	if ret != nvml.SUCCESS {
		err = initError(ret)
	} else {
		c.initialised = true
	}
	c.mu.Lock()
	recovered := err == nil && c.initErr != nil
	c.initErr = err
	c.mu.Unlock()
	if recovered {
		c.logger.Info("NVML loaded; the nvml collector is reading GPUs")
	}
	return err
}

func initError(ret nvml.Return) error {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return fmt.Errorf("%w: libnvidia-ml.so.1 could not be loaded (%s): no NVIDIA driver on this node, or the library is not mounted into the container", ErrUnavailable, ret.Error())
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return fmt.Errorf("%w: the NVIDIA kernel driver is not loaded (%s)", ErrUnavailable, ret.Error())
	case nvml.ERROR_NO_PERMISSION:
		return fmt.Errorf("%w: no permission to open the NVIDIA devices (%s)", ErrUnavailable, ret.Error())
	}
	return fmt.Errorf("%w: nvmlInit: %s", ErrUnavailable, ret.Error())
}

// Start begins polling NVML every interval and watching XID events, in the
// background, until ctx ends or Close is called. It waits for the first
// poll, at most one interval (a hung driver does not hold the caller), so
// that the first scrape has data. On a degraded collector the poller
// retries initialising NVML on every interval.
func (c *Collector) Start(ctx context.Context) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	switch {
	case c.closed:
		return errors.New("nvml collector: start after close")
	case c.started:
		return errors.New("nvml collector: already started")
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	first := make(chan struct{})
	c.wg.Add(1)
	go c.loop(ctx, first)
	wait := time.NewTimer(c.opts.Interval)
	defer wait.Stop()
	select {
	case <-first:
	case <-wait.C:
		c.logger.Warn("the first NVML poll is taking longer than one interval; serving without it", "interval", c.opts.Interval)
	case <-ctx.Done():
	}
	return nil
}

// loop polls now and then every interval until ctx ends; it closes first
// after the first poll. Every NVML call of the collector but the event
// waits happens here.
func (c *Collector) loop(ctx context.Context, first chan<- struct{}) {
	defer c.wg.Done()
	c.step(ctx)
	close(first)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.step(ctx)
		}
	}
}

// step initialises NVML if needed, starts the event goroutine once, and
// polls; it reports whether NVML is initialised.
func (c *Collector) step(ctx context.Context) bool {
	if err := c.tryInit(); err != nil {
		return false
	}
	if !c.eventsStarted {
		c.eventsStarted = true
		c.startEvents(ctx)
	}
	c.poll()
	return true
}

// Close stops the poller and the event goroutine, frees NVML resources,
// withdraws the devices from the inventory and shuts NVML down. It is
// safe to call more than once.
func (c *Collector) Close() error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.opts.Inventory != nil {
		c.opts.Inventory.SetDevices(Source, nil)
	}
	if !c.initialised {
		return nil
	}
	c.gpm.freeAll()
	if ret := c.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvmlShutdown: %s", ret.Error())
	}
	return nil
}

// Update sends the latest snapshot and the XID and NVML error counters. It
// never calls NVML. It fails while NVML is unavailable, when the last poll
// failed as a whole, and when the last poll is older than StaleAfter (a
// hung driver), rather than serve stale readings.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	c.mu.RLock()
	initErr, snap := c.initErr, c.snap
	c.mu.RUnlock()
	if initErr != nil {
		return initErr
	}
	c.errs.send(ch, c.opts.Node)
	c.xids.send(ch, c.opts.Node)
	switch {
	case snap == nil:
		return errors.New("NVML not polled yet (the collector is not started, or its first poll has not finished)")
	case snap.err != nil:
		return snap.err
	}
	if age := c.opts.Now().Sub(snap.at); age > c.opts.StaleAfter {
		return fmt.Errorf("last NVML poll finished %s ago (more than %s): the driver may be hung", age.Round(time.Second), c.opts.StaleAfter)
	}
	for _, m := range snap.metrics {
		ch <- m
	}
	return nil
}

func (c *Collector) setSnapshot(s *snapshot) {
	c.mu.Lock()
	c.snap = s
	c.mu.Unlock()
}
