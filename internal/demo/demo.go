// Package demo runs gpuledger's simulated pipeline for a person to look at:
// it picks a scenario (a window of the public Alibaba GPU v2023 trace when
// the traces are at hand, a generated AI_INFN-like cluster otherwise),
// writes it and its exact ground truth, replays it through the real
// pipeline into the ledger, writes the Grafana dashboards and the alert
// rules, serves one simulated exporter per node on loopback on virtual
// time (checking each answers) and the usage page and accounting API on
// the replayed ledger with a development identity provider, and prints
// where to look.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/internal/tabular"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/generate"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/trace"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// Options configure a demo run.
type Options struct {
	// Out is the directory the scenario, reports, Prometheus
	// configuration, dashboards, alert rules and API tokens are written
	// to.
	Out string
	// TraceDir holds the public traces; when its Alibaba v2023 files are
	// missing the demo generates a cluster instead.
	TraceDir string
	// Generated forces a generated cluster even when the traces are there.
	Generated bool
	// Window is the length of the simulated range.
	Window time.Duration
	// TraceOffset is where the window starts in the trace.
	TraceOffset time.Duration
	// Nodes is the size of a generated cluster.
	Nodes int
	// Seed selects tenants, UUIDs and, for a generated cluster, everything.
	Seed uint64
	// Speed is how many simulated seconds pass per wall-clock second.
	Speed float64
	// ServeFor stops the demo after this long; zero serves until ctx ends.
	ServeFor time.Duration
	// DatabaseURL is the ledger's database; empty starts a private
	// throwaway PostgreSQL from the system's server binaries.
	DatabaseURL string
	// NoLedger skips the replay into the ledger.
	NoLedger bool
	// Binary is the gpuledger executable the replay's aggregator runs from.
	Binary string
	// ScrapeInterval of the scenario (default 1m, to keep the demo's replay
	// short; exactness does not depend on it).
	ScrapeInterval time.Duration
	// Logger receives the exporters' errors; nil discards them.
	Logger *slog.Logger
}

// Defaults of a demo run.
const (
	DefaultWindow      = 6 * time.Hour
	DefaultTraceOffset = 148 * 24 * time.Hour
	DefaultNodes       = 12
	DefaultSpeed       = 60
)

// Start is where a demo's simulated range begins.
var Start = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// Run runs the demo and writes its narration to w.
func Run(ctx context.Context, opts Options, w io.Writer) error {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Speed <= 0 {
		opts.Speed = DefaultSpeed
	}
	if opts.Nodes <= 0 {
		opts.Nodes = DefaultNodes
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	p := printer{w: w}
	p.say("gpuledger demo")

	s, origin, err := pickScenario(opts)
	if err != nil {
		return err
	}
	scenFile := filepath.Join(opts.Out, "scenario.yaml")
	if err := writeFile(scenFile, func(f io.Writer) error { return scenario.Write(f, s) }); err != nil {
		return err
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	busy := busyNodes(s, allocs)
	p.say("")
	p.say("Scenario: %s", origin)
	p.say("  %s, %s to %s, %d pods, %d allocations on %d of %d nodes", s.Cluster,
		s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), len(s.Pods), len(allocs), len(busy), len(s.Nodes))
	p.say("  written to %s", scenFile)

	detail, err := groundTruth(&p, opts.Out, s, allocs)
	if err != nil {
		return err
	}
	dbURL := opts.DatabaseURL
	if !opts.NoLedger {
		url, stop, err := ledgerReplay(ctx, &p, opts, s, scenFile)
		if err != nil {
			return err
		}
		defer stop()
		dbURL = url
	}
	arts, err := writeArtifacts(opts.Out)
	if err != nil {
		return err
	}
	promConfig := filepath.Join(opts.Out, "prometheus.yml")
	arts.say(&p, promConfig)

	clk := clock.NewVirtual(s.Start, opts.Speed)
	targets, err := serve(ctx, s, allocs, busy, clk, opts.Logger)
	if err != nil {
		return err
	}
	if err := writeTargets(opts.Out, s, targets, arts.rules); err != nil {
		return err
	}
	healthy := check(ctx, targets)
	p.say("")
	p.say("Exporters: %d simulated node exporters on 127.0.0.1 (%d answered their first scrape),", len(targets), healthy)
	p.say("  on virtual time from %s at %gx (%s of the scenario per wall-clock minute).",
		s.Start.Format(time.RFC3339), opts.Speed, model.Duration(time.Duration(opts.Speed*float64(time.Minute)).Round(time.Second)))
	shown := min(3, len(targets))
	for _, t := range targets[:shown] {
		p.say("  %-24s http://%s/metrics", t.node, t.addr)
	}
	if len(targets) > shown {
		p.say("  … and %d more: %s lists them all", len(targets)-shown, filepath.Join(opts.Out, "targets.json"))
	}
	if len(targets) == 0 {
		return errors.New("demo: the scenario holds no allocation to serve")
	}
	// The page and the API read the ledger the replay wrote; a demo
	// without a replay has none to show.
	if !opts.NoLedger {
		who := pickPeople(detail)
		acct, err := serveAPI(ctx, opts, dbURL, who)
		if err != nil {
			return err
		}
		defer acct.stop()
		acct.say(&p, s, who)
	}
	first := targets[0]
	p.say("")
	p.say("Where to look:")
	p.say("  curl -s http://%s/metrics | grep ^gpuledger_allocation_start_time_seconds", first.addr)
	p.say("  curl -s 'http://%s/metrics?at=%s' | grep ^gpuledger_allocation_end   # any instant (simulation only)",
		first.addr, s.Start.Add(s.End.Sub(s.Start)/2).Format(time.RFC3339))
	p.say("  prometheus --config.file=%s   # scrape every exporter (file_sd targets), with the alert rules", promConfig)
	p.say("  bin/gpuledger sim truth --scenario %s --group-by project,user,resource", scenFile)
	if dbURL != "" {
		p.say("  bin/gpuledger report --database-url '%s' --from %s --to %s --group-by project,user,resource",
			dbURL, s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339))
	}
	p.say("  docs/metrics.md explains every series; docs/scenario.md the scenario format.")
	p.say("")
	if opts.ServeFor > 0 {
		p.say("Serving for %s.", opts.ServeFor)
		select {
		case <-ctx.Done():
		case <-time.After(opts.ServeFor):
		}
	} else {
		p.say("Serving until Ctrl-C.")
		<-ctx.Done()
	}
	p.say("Stopped.")
	return nil
}

type printer struct{ w io.Writer }

func (p printer) say(format string, args ...any) { fmt.Fprintf(p.w, format+"\n", args...) }

// pickScenario returns the trace window when the traces are there, else a
// generated cluster, and says which.
func pickScenario(opts Options) (*scenario.Scenario, string, error) {
	pods := filepath.Join(opts.TraceDir, trace.AlibabaPodsFile)
	nodes := filepath.Join(opts.TraceDir, trace.AlibabaNodesFile)
	orgsFile := filepath.Join(opts.TraceDir, trace.OrgsFile)
	if !opts.Generated && opts.TraceDir != "" && exists(pods) && exists(nodes) {
		tp, err := trace.LoadAlibabaPods(pods)
		if err != nil {
			return nil, "", err
		}
		tn, err := trace.LoadAlibabaNodes(nodes)
		if err != nil {
			return nil, "", err
		}
		orgs := trace.UniformOrgs()
		tenants := "built-in uniform tenants"
		if exists(orgsFile) {
			if orgs, err = trace.LoadOrgs(orgsFile); err != nil {
				return nil, "", err
			}
			tenants = "tenants with the organisation shares of " + orgsFile
		}
		s, err := trace.Alibaba(tp, tn, orgs, trace.Options{
			Cluster: "alibaba-v2023-demo", Epoch: Start.Add(-opts.TraceOffset), From: opts.TraceOffset,
			Duration: opts.Window, Seed: opts.Seed, ScrapeInterval: opts.ScrapeInterval,
		})
		if err != nil {
			return nil, "", err
		}
		// Play a crash of the aggregator and an outage of the database, as
		// a generated cluster's faults do; neither may change a figure.
		s.Faults = append(s.Faults,
			scenario.Fault{Kind: scenario.FaultAggregatorCrash, At: s.Start.Add(opts.Window / 3).Add(7 * time.Second)},
			scenario.Fault{Kind: scenario.FaultDatabaseOutage, At: s.Start.Add(opts.Window / 2), Duration: scenario.Duration(2 * time.Minute)})
		return s, fmt.Sprintf("a %s window of the public Alibaba GPU v2023 trace (%s, offset %s), %s",
			model.Duration(opts.Window), opts.TraceDir, model.Duration(opts.TraceOffset), tenants), nil
	}
	cfg := generate.DefaultConfig()
	cfg.Nodes, cfg.Duration, cfg.Seed, cfg.Start = opts.Nodes, opts.Window, opts.Seed, Start
	cfg.Cluster, cfg.ScrapeInterval, cfg.Faults = "ai-infn-demo", opts.ScrapeInterval, true
	s, err := generate.Generate(cfg)
	if err != nil {
		return nil, "", err
	}
	why := "forced by --generated"
	if !opts.Generated {
		why = fmt.Sprintf("the public traces are not at %q; set TRACE_DIR to use them", opts.TraceDir)
	}
	return s, fmt.Sprintf("a generated AI_INFN-like cluster of %d nodes (%s)", opts.Nodes, why), nil
}

func exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// busyNodes returns the nodes holding at least one allocation in the range,
// in scenario order.
func busyNodes(s *scenario.Scenario, allocs []scenario.Allocation) []string {
	held := map[string]bool{}
	for i := range allocs {
		a := &allocs[i]
		if a.Start.Before(s.End) && (a.Open() || a.End.After(s.Start)) {
			held[a.Node] = true
		}
	}
	var out []string
	for _, n := range s.Nodes {
		if held[n.Name] {
			out = append(out, n.Name)
		}
	}
	return out
}

// groundTruth writes the exact allocated GPU-hours by project and by
// project, user and resource, prints the largest projects, and returns
// the latter report.
func groundTruth(p *printer, out string, s *scenario.Scenario, allocs []scenario.Allocation) (*truth.Report, error) {
	byProject, err := truth.Compute(allocs, s.Start, s.End, []string{truth.KeyProject})
	if err != nil {
		return nil, err
	}
	detail, err := truth.Compute(allocs, s.Start, s.End, []string{truth.KeyProject, truth.KeyUser, truth.KeyResource})
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		rep  *truth.Report
	}{{"truth-by-project.csv", byProject}, {"truth-by-project-user-resource.csv", detail}}
	for _, f := range files {
		path := filepath.Join(out, f.name)
		if err := writeFile(path, func(w io.Writer) error {
			tw, err := tabular.New(tabular.FormatCSV, w, f.rep.Columns(), f.rep.Meta()...)
			if err != nil {
				return err
			}
			return f.rep.Write(tw)
		}); err != nil {
			return nil, err
		}
	}
	rows := byProject.Rows
	var total int64
	for _, r := range rows {
		total += r.AllocatedMilliGPUSeconds
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].AllocatedMilliGPUSeconds > rows[j].AllocatedMilliGPUSeconds })
	p.say("")
	p.say("Ground truth: %.3f allocated GPU-hours in %d projects (exact: %d milli-GPU-seconds)",
		float64(total)/3.6e6, len(rows), total)
	for _, r := range rows[:min(5, len(rows))] {
		p.say("  %-20s %12.3f GPU-h", r.Keys[0], float64(r.AllocatedMilliGPUSeconds)/3.6e6)
	}
	p.say("  written to %s and %s", filepath.Join(out, files[0].name), filepath.Join(out, files[1].name))
	return detail, nil
}

type target struct {
	node string
	addr string
}

// serve starts one simulated exporter per node on a loopback port.
func serve(ctx context.Context, s *scenario.Scenario, allocs []scenario.Allocation, nodes []string,
	clk clock.Clock, logger *slog.Logger) ([]target, error) {
	out := make([]target, 0, len(nodes))
	for _, n := range nodes {
		src, err := sim.New(s, allocs, n, clk, sim.Options{Logger: logger})
		if err != nil {
			return nil, err
		}
		srv, err := exporters.NewSimNode(src, exporters.Options{Logger: logger,
			Server: server.Options{Name: "gpuledger demo exporter (" + n + ")", Logger: logger}})
		if err != nil {
			return nil, err
		}
		l, err := server.Listen("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		go func() {
			if err := srv.Serve(ctx, l); err != nil {
				logger.Error("exporter stopped", "node", n, "err", err)
			}
		}()
		out = append(out, target{node: n, addr: l.Addr().String()})
	}
	return out, nil
}

// check scrapes every exporter once and counts those that answer.
func check(ctx context.Context, targets []target) int {
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		mu sync.Mutex
		ok int
		wg sync.WaitGroup
	)
	sem := make(chan struct{}, 8)
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.addr+"/metrics", nil)
			if err != nil {
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// A node inside a simulated fault answers 503; it still answers.
			if resp.StatusCode == http.StatusServiceUnavailable ||
				(resp.StatusCode == http.StatusOK && strings.Contains(string(body), "gpuledger_build_info")) {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

// writeTargets writes a Prometheus file_sd target list and a configuration
// that scrapes it at the scenario's interval and loads the rule file.
func writeTargets(out string, s *scenario.Scenario, targets []target, rules string) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := make([]group, 0, len(targets))
	for _, t := range targets {
		groups = append(groups, group{Targets: []string{t.addr}, Labels: map[string]string{"node": t.node, "cluster": s.Cluster}})
	}
	tf := filepath.Join(out, "targets.json")
	if err := writeFile(tf, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(groups)
	}); err != nil {
		return err
	}
	abs, err := filepath.Abs(tf)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	absRules, err := filepath.Abs(rules)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg := fmt.Sprintf(`# Scrapes the demo's simulated exporters and evaluates gpuledger's alert
# rules. Generated by gpuledger demo.
global:
  scrape_interval: %s
rule_files:
  - %q
scrape_configs:
  - job_name: gpuledger-exporter
    file_sd_configs:
      - files: [%q]
`, s.ScrapeInterval.D(), absRules, abs)
	return writeFile(filepath.Join(out, "prometheus.yml"), func(w io.Writer) error {
		_, err := io.WriteString(w, cfg)
		return err
	})
}

// writeFile writes a file through a temporary one, so a reader never sees
// half of it.
func writeFile(path string, fill func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := fill(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("demo: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("demo: %w", err)
	}
	return os.Rename(tmp, path)
}
