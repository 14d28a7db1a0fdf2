// Package replay runs gpuledger's real pipeline on a scenario, on virtual
// time, as fast as the machine allows: simulated exporters serve HTTP on
// loopback, a real aggregator process scrapes them and writes the ledger in
// PostgreSQL, and the scenario's faults are played for real — the
// aggregator is SIGKILLed and restarted, the database connections are cut
// (through a proxy), exporters stop answering.
//
// Time moves in lockstep: the replay sets the exporters' clock to the next
// scrape instant only once every exporter that is up has been scraped at
// the current one, so the aggregator sees the same scrapes it would see in
// real time, only faster.
package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/internal/procutil"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Options configure a replay.
type Options struct {
	Scenario    *scenario.Scenario
	DatabaseURL string
	// Binary is the gpuledger executable the aggregator runs from.
	Binary string
	// Window is the ledger window the aggregator uses.
	Window time.Duration
	// WorkDir receives the targets file and the aggregator's log.
	WorkDir string
	// Progress receives a progress line; Terminal redraws it in place.
	Progress io.Writer
	Terminal bool
	// StepTimeout bounds the wait for one round of scrapes.
	StepTimeout time.Duration
	// AggregatorArgs are added to the aggregator's command line.
	AggregatorArgs []string
	// Standby starts a second aggregator at once beside the first: it must
	// wait on the writer lock and take over when the first is killed,
	// without counting anything twice.
	Standby bool
	// Logger receives the exporters' errors; nil discards them.
	Logger *slog.Logger
}

// Summary says what a replay did.
type Summary struct {
	Nodes       int
	Steps       int
	Scrapes     int64
	Crashes     int
	Outages     int
	ScrapeGaps  int
	Restarts    int
	Wall        time.Duration
	Simulated   time.Duration
	AggregatorL string // path of the aggregator's log
}

// Speedup is simulated time per wall-clock time.
func (s *Summary) Speedup() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return s.Simulated.Seconds() / s.Wall.Seconds()
}

// Run replays the scenario and returns when the aggregator has written every
// window up to the scenario's end.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	s := opts.Scenario
	if s == nil || opts.DatabaseURL == "" || opts.Binary == "" || opts.WorkDir == "" {
		return nil, errors.New("replay: scenario, database URL, binary and work directory are required")
	}
	if opts.Window <= 0 {
		opts.Window = 5 * time.Minute
	}
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = 2 * time.Minute
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	clk := clock.NewManual(s.Start)
	nodes, err := serveNodes(ctx, s, allocs, clk, logger)
	if err != nil {
		return nil, err
	}
	targets := filepath.Join(opts.WorkDir, "targets.json")
	if err := writeTargets(targets, s.Cluster, nodes); err != nil {
		return nil, err
	}
	proxy, dbURL, err := proxyDatabase(opts.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()

	sum := &Summary{Nodes: len(nodes), AggregatorL: filepath.Join(opts.WorkDir, "aggregator.log")}
	agg := &aggregatorProc{
		binary: opts.Binary, log: sum.AggregatorL,
		args: append([]string{"aggregator",
			"--database-url", dbURL,
			"--cluster", s.Cluster,
			"--targets-file", targets,
			"--interval", "0s",
			"--window", opts.Window.String(),
			"--lag", (2 * s.ScrapeInterval.D()).String(),
			"--until", s.End.UTC().Format(time.RFC3339),
			"--listen-address", "",
		}, opts.AggregatorArgs...),
	}
	if err := agg.start(); err != nil {
		return nil, err
	}
	defer agg.kill()
	var standby *aggregatorProc
	if opts.Standby {
		standby = &aggregatorProc{binary: opts.Binary, log: filepath.Join(opts.WorkDir, "aggregator-standby.log"), args: agg.args}
		if err := standby.start(); err != nil {
			return nil, err
		}
		defer standby.kill()
	}
	// up is the aggregator doing the work now: with a standby, whichever
	// holds the lock; the replay only needs one of them scraping.
	up := func() *aggregatorProc {
		if standby != nil && (standby.holdsLock() || !agg.running()) {
			return standby
		}
		return agg
	}

	faults := append([]scenario.Fault(nil), s.Faults...)
	sort.SliceStable(faults, func(i, j int) bool { return faults[i].At.Before(faults[j].At) })
	var (
		aggDownUntil time.Time
		dbUpAt       time.Time
		dbDown       bool
	)
	interval := s.ScrapeInterval.D()
	for t := s.Start; !t.After(s.End); t = t.Add(interval) {
		for len(faults) > 0 && !faults[0].At.After(t) {
			f := faults[0]
			faults = faults[1:]
			switch f.Kind {
			case scenario.FaultAggregatorCrash:
				sum.Crashes++
				// Kill the one doing the work; a standby takes over.
				victim := agg
				if standby != nil && standby.holdsLock() {
					victim = standby
				}
				victim.kill()
				aggDownUntil = f.At.Add(f.Duration.D())
			case scenario.FaultDatabaseOutage:
				sum.Outages++
				proxy.Down()
				dbDown, dbUpAt = true, f.At.Add(f.Duration.D())
			case scenario.FaultScrapeGap:
				sum.ScrapeGaps++ // the simulated exporters answer 503 by themselves
			case scenario.FaultExporterRestart:
				sum.Restarts++
			}
		}
		if dbDown && !t.Before(dbUpAt) {
			proxy.Up()
			dbDown = false
		}
		if !t.Before(aggDownUntil) {
			for _, a := range []*aggregatorProc{agg, standby} {
				if a != nil && !a.running() {
					if err := a.start(); err != nil {
						return nil, err
					}
				}
			}
		}
		clk.Set(t)
		if a := up(); a.running() {
			if err := waitScraped(ctx, nodes, t, a, opts.StepTimeout); err != nil {
				return nil, err
			}
		}
		sum.Steps++
		progress(opts, s, t, sum)
	}
	if dbDown {
		proxy.Up()
	}
	for _, a := range []*aggregatorProc{agg, standby} {
		if a == nil {
			continue
		}
		if !a.running() {
			if err := a.start(); err != nil {
				return nil, err
			}
		}
		if err := a.wait(ctx, opts.StepTimeout+time.Minute); err != nil {
			return nil, err
		}
	}
	for _, n := range nodes {
		sum.Scrapes += n.tracker.count()
	}
	sum.Wall = time.Since(began)
	sum.Simulated = s.End.Sub(s.Start)
	if opts.Progress != nil && opts.Terminal {
		fmt.Fprintln(opts.Progress)
	}
	return sum, nil
}

// node is one simulated exporter.
type node struct {
	name    string
	addr    string
	src     *sim.Source
	tracker *tracker
}

// tracker records the simulated instant of the last /metrics answer.
type tracker struct {
	mu     sync.Mutex
	cond   *sync.Cond
	last   time.Time
	served int64
}

func newTracker() *tracker {
	t := &tracker{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *tracker) wrap(clk clock.Clock, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := clk.Now()
		h.ServeHTTP(w, r)
		if r.URL.Path != "/metrics" {
			return
		}
		t.mu.Lock()
		if now.After(t.last) || t.last.IsZero() {
			t.last = now
		}
		t.served++
		t.mu.Unlock()
		t.cond.Broadcast()
	})
}

func (t *tracker) count() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.served
}

func serveNodes(ctx context.Context, s *scenario.Scenario, allocs []scenario.Allocation, clk clock.Clock,
	logger *slog.Logger) ([]*node, error) {
	held := map[string]bool{}
	for i := range allocs {
		held[allocs[i].Node] = true
	}
	var nodes []*node
	for _, n := range s.Nodes {
		if !held[n.Name] {
			continue
		}
		src, err := sim.New(s, allocs, n.Name, clk, sim.Options{Logger: logger})
		if err != nil {
			return nil, err
		}
		srv, err := exporters.NewSimNode(src, exporters.Options{Logger: logger,
			Server: server.Options{Logger: logger, MaxRequestsInFlight: -1}})
		if err != nil {
			return nil, err
		}
		l, err := server.Listen("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		nd := &node{name: n.Name, addr: l.Addr().String(), src: src, tracker: newTracker()}
		hs := &http.Server{Handler: nd.tracker.wrap(clk, srv.Handler()), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(l) }()
		go func() {
			<-ctx.Done()
			_ = hs.Close()
		}()
		nodes = append(nodes, nd)
	}
	if len(nodes) == 0 {
		return nil, errors.New("replay: the scenario holds no allocation")
	}
	return nodes, nil
}

// waitScraped waits until every exporter that is up at t has answered a
// scrape at t.
func waitScraped(ctx context.Context, nodes []*node, t time.Time, agg *aggregatorProc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range nodes {
		if n.src.Check(t) != nil {
			continue // down at t: a simulated fault
		}
		tr := n.tracker
		for {
			tr.mu.Lock()
			ok := !tr.last.Before(t)
			tr.mu.Unlock()
			if ok {
				break
			}
			if exited, err := agg.exited(); exited {
				// Exiting on its own is a failure, unless it is the normal
				// end (--until reached): then the scrapes it needed were
				// answered, even if this tracker has not caught up yet.
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("replay: node %s not scraped at %s within %s; aggregator log: %s",
					n.name, t.UTC().Format(time.RFC3339), timeout, agg.log)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

func writeTargets(path, cluster string, nodes []*node) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := make([]group, 0, len(nodes))
	for _, n := range nodes {
		groups = append(groups, group{Targets: []string{n.addr}, Labels: map[string]string{"node": n.name, "cluster": cluster}})
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// proxyDatabase puts a proxy in front of the database and returns the URL
// that goes through it.
func proxyDatabase(raw string) (*Proxy, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("replay: database URL must be a postgres:// URL with a host: %q", raw)
	}
	host := u.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "5432")
	}
	p, err := NewProxy(host)
	if err != nil {
		return nil, "", err
	}
	u.Host = p.Addr()
	return p, u.String(), nil
}

// aggregatorProc is the aggregator child process.
type aggregatorProc struct {
	binary string
	args   []string
	log    string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	offset int64 // size of the log when the process last started
}

func (a *aggregatorProc) start() error {
	f, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var offset int64
	if st, err := f.Stat(); err == nil {
		offset = st.Size()
	}
	cmd := exec.Command(a.binary, a.args...)
	cmd.Stdout, cmd.Stderr = f, f
	procutil.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("replay: start aggregator: %w", err)
	}
	done := make(chan struct{})
	a.mu.Lock()
	a.cmd, a.done, a.err, a.offset = cmd, done, nil, offset
	a.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		a.mu.Lock()
		a.err = err
		a.mu.Unlock()
		close(done)
	}()
	return nil
}

func (a *aggregatorProc) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// holdsLock reports whether the running process has taken the writer lock
// since it was last started: the aggregator logs "writer lock taken" then.
func (a *aggregatorProc) holdsLock() bool {
	if !a.running() {
		return false
	}
	a.mu.Lock()
	off := a.offset
	a.mu.Unlock()
	b, err := os.ReadFile(a.log)
	if err != nil || int64(len(b)) < off {
		return false
	}
	return bytes.Contains(b[off:], []byte("writer lock taken"))
}

// exited reports whether the aggregator has exited, and with an error
// when it did not exit cleanly.
func (a *aggregatorProc) exited() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done == nil {
		return false, nil
	}
	select {
	case <-a.done:
		if a.err == nil {
			return true, nil
		}
		return true, fmt.Errorf("replay: the aggregator exited (%v) before the end; its log:\n%s", a.err, tail(a.log))
	default:
		return false, nil
	}
}

// kill SIGKILLs the aggregator and waits for it.
func (a *aggregatorProc) kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	<-done
}

// wait waits for the aggregator to finish on its own (--until).
func (a *aggregatorProc) wait(ctx context.Context, timeout time.Duration) error {
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("replay: the aggregator did not finish within %s; its log:\n%s", timeout, tail(a.log))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return fmt.Errorf("replay: the aggregator failed: %v; its log:\n%s", a.err, tail(a.log))
	}
	return nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// progress draws a progress bar on a terminal, or a line per simulated hour
// elsewhere.
func progress(opts Options, s *scenario.Scenario, t time.Time, sum *Summary) {
	if opts.Progress == nil {
		return
	}
	total := s.End.Sub(s.Start)
	done := t.Sub(s.Start)
	frac := float64(done) / float64(total)
	if opts.Terminal {
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(opts.Progress, "\r[%s%s] %5.1f%%  %s  crashes %d  db outages %d",
			strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, t.UTC().Format(time.RFC3339), sum.Crashes, sum.Outages)
		return
	}
	if done%time.Hour == 0 {
		fmt.Fprintf(opts.Progress, "replay: %s (%.0f%%)\n", t.UTC().Format(time.RFC3339), 100*frac)
	}
}
