// Package backfill writes the history of a scenario's simulated exporters
// as OpenMetrics text with timestamps: what a Prometheus scraping every
// node at the scenario's interval would have stored, ready for
//
//	promtool tsdb create-blocks-from openmetrics FILE DIR
//
// so that a real Prometheus can serve a month of a simulated cluster to the
// aggregator's Prometheus source (docs/sources.md).
//
// OpenMetrics wants all the samples of a family together, while the
// exporters are evaluated one instant at a time. The writer makes one pass
// over time, evaluating each node once per instant, and appends each
// family's lines to a temporary file of its own; at the end it writes the
// families one after the other. Memory stays bounded by the buffers, a
// month of a large cluster included; the temporary files take about the
// size of the output.
package backfill

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// DefaultJob is the job label written on every series, the job name the
// demo's Prometheus configuration uses.
const DefaultJob = "gpuledger-exporter"

// Options choose what to write. Zero values take the defaults.
type Options struct {
	// From and To bound the instants written: [From, To), on the
	// scenario's grid start + k × Interval. From defaults to the
	// scenario's start; without To, every instant up to the scenario's end
	// is written, the end included (its exporters serve [start, end]).
	// Consecutive ranges [a, b), [b, c) write each instant once, so a long
	// scenario can be written one day at a time.
	From, To time.Time
	// Interval is the scrape interval (default the scenario's).
	Interval time.Duration
	// Nodes restricts the output to these nodes (default every node).
	Nodes []string
	// Families restricts the output to these metric families (exposition
	// names, up included; default every family the exporters serve, and
	// up). source.Families() plus up is what the aggregator reads.
	Families []string
	// Job is the job label (default DefaultJob).
	Job string
	// ClusterLabel names the label carrying the scenario's cluster name
	// (default "cluster"); "-" writes none.
	ClusterLabel string
	// Retention is how long ended allocations stay exported (default the
	// scenario's).
	Retention time.Duration
	// TempDir holds the per-family temporary files (default os.TempDir()).
	TempDir string
}

// Stats describe what Write wrote.
type Stats struct {
	Instants int   // instants of the grid written
	Scrapes  int   // node scrapes that succeeded
	Failed   int   // node scrapes inside a fault (up = 0, no other sample)
	Samples  int64 // sample lines
	Families int
	Bytes    int64
	// Missing lists the families asked for in Options.Families that no
	// scrape served (a misspelt name, or a family absent from the range).
	Missing []string
}

// Write writes the history of s to w as OpenMetrics text ending in
// "# EOF". Every series carries the labels a Prometheus scrape adds: job,
// instance (the node name) and, unless disabled, the cluster; the series
// without a node label (the exporter's time, up) get the node as a target
// label, as the demo's file_sd configuration gives it. During a node's
// exporter_restart or scrape_gap faults only up = 0 is written for it.
func Write(ctx context.Context, w io.Writer, s *scenario.Scenario, opts Options) (Stats, error) {
	var st Stats
	if s == nil {
		return st, errors.New("backfill: no scenario")
	}
	if opts.Interval == 0 {
		opts.Interval = s.ScrapeInterval.D()
	}
	if opts.Interval <= 0 || opts.Interval%time.Millisecond != 0 {
		return st, fmt.Errorf("backfill: scrape interval %s: want a positive whole number of milliseconds", opts.Interval)
	}
	if opts.From.IsZero() {
		opts.From = s.Start
	}
	last := s.End // the last instant that may be written
	if !opts.To.IsZero() {
		if !opts.To.After(opts.From) {
			return st, fmt.Errorf("backfill: empty range: to %s is not after from %s",
				opts.To.UTC().Format(time.RFC3339), opts.From.UTC().Format(time.RFC3339))
		}
		if to := opts.To.Add(-time.Millisecond); to.Before(last) {
			last = to
		}
	}
	if opts.From.Before(s.Start) || opts.From.After(s.End) || (!opts.To.IsZero() && opts.To.After(s.End.Add(time.Millisecond))) {
		return st, fmt.Errorf("backfill: range from %s to %s is not within the scenario's [%s, %s]",
			opts.From.UTC().Format(time.RFC3339), opts.To.UTC().Format(time.RFC3339),
			s.Start.UTC().Format(time.RFC3339), s.End.UTC().Format(time.RFC3339))
	}
	var keep map[string]bool // nil: every family
	if len(opts.Families) > 0 {
		keep = map[string]bool{}
		for _, f := range opts.Families {
			keep[f] = true
		}
	}
	if opts.Job == "" {
		opts.Job = DefaultJob
	}
	if opts.ClusterLabel == "" {
		opts.ClusterLabel = "cluster"
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		return st, fmt.Errorf("backfill: %w", err)
	}
	nodes, err := pickNodes(s, opts.Nodes)
	if err != nil {
		return st, err
	}
	ns := make([]*node, 0, len(nodes))
	for _, name := range nodes {
		src, err := sim.New(s, allocs, name, clock.Fixed(s.Start), sim.Options{Retention: opts.Retention})
		if err != nil {
			return st, fmt.Errorf("backfill: %w", err)
		}
		n := &node{name: name, src: src, coll: &pinned{src: src}, reg: prometheus.NewRegistry()}
		if err := n.reg.Register(n.coll); err != nil {
			return st, fmt.Errorf("backfill: %w", err)
		}
		n.extra = extraLabels(opts, s.Cluster, name)
		ns = append(ns, n)
	}

	sp := &spill{dir: opts.TempDir, fams: map[string]*famFile{}}
	defer sp.close()

	first := s.Start.Add(ceilDiv(opts.From.Sub(s.Start), opts.Interval) * opts.Interval)
	workers := min(runtime.GOMAXPROCS(0), len(ns))
	for t := first; !t.After(last); t = t.Add(opts.Interval) {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.Instants++
		ts := appendTimestamp(nil, t.UnixMilli())
		// The nodes render their scrapes concurrently; they are written
		// in node order, so the output does not depend on scheduling.
		var wg sync.WaitGroup
		next := make(chan *node, len(ns))
		for _, n := range ns {
			next <- n
		}
		close(next)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range next {
					n.render(t, ts, keep)
				}
			}()
		}
		wg.Wait()
		for _, n := range ns {
			if n.err != nil {
				return st, n.err
			}
			if n.up == 1 {
				st.Scrapes++
			} else {
				st.Failed++
			}
			for i := range n.chunks {
				c := &n.chunks[i]
				f, err := sp.family(c.name, c.help, c.typ)
				if err != nil {
					return st, err
				}
				if _, err := f.w.Write(c.lines); err != nil {
					return st, fmt.Errorf("backfill: %w", err)
				}
				st.Samples += int64(c.samples)
			}
		}
	}
	cw := &countingWriter{w: w}
	if err := sp.writeTo(cw); err != nil {
		return st, err
	}
	st.Families = len(sp.fams)
	st.Bytes = cw.n
	for f := range keep {
		if _, ok := sp.fams[f]; !ok {
			st.Missing = append(st.Missing, f)
		}
	}
	sort.Strings(st.Missing)
	return st, nil
}

func ceilDiv(a, b time.Duration) time.Duration {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

func pickNodes(s *scenario.Scenario, want []string) ([]string, error) {
	if len(want) == 0 {
		out := make([]string, 0, len(s.Nodes))
		for _, n := range s.Nodes {
			out = append(out, n.Name)
		}
		return out, nil
	}
	seen := map[string]bool{}
	var out []string
	for _, w := range want {
		if _, ok := s.Node(w); !ok {
			return nil, fmt.Errorf("backfill: %w %q in scenario %s", sim.ErrUnknownNode, w, s.Cluster)
		}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out, nil
}

// node is one simulated exporter.
type node struct {
	name  string
	src   *sim.Source
	coll  *pinned
	reg   *prometheus.Registry
	extra []label // the labels a scrape adds, sorted by name

	// What render produced for the current instant.
	up     float64
	chunks []chunk // reused from one instant to the next
	err    error
}

// chunk is one family's sample lines from one scrape.
type chunk struct {
	name, help string
	typ        dto.MetricType
	lines      []byte
	samples    int
}

const upHelp = "Whether the scrape of the target succeeded (1) or failed (0)."

// render evaluates the node's exporter at t: its families' sample lines
// (those in keep, when not nil) and up, or only up = 0 during a fault.
func (n *node) render(t time.Time, ts []byte, keep map[string]bool) {
	n.chunks, n.err, n.up = n.chunks[:0], nil, 1
	add := func(name, help string, typ dto.MetricType) *chunk {
		k := len(n.chunks)
		if k < cap(n.chunks) {
			n.chunks = n.chunks[:k+1]
			n.chunks[k].lines, n.chunks[k].samples = n.chunks[k].lines[:0], 0
		} else {
			n.chunks = append(n.chunks, chunk{})
		}
		c := &n.chunks[k]
		c.name, c.help, c.typ = name, help, typ
		return c
	}
	if err := n.src.Check(t); err != nil {
		if !errors.Is(err, sim.ErrUnavailable) {
			n.err = fmt.Errorf("backfill: node %s at %s: %w", n.name, t.UTC().Format(time.RFC3339), err)
			return
		}
		n.up = 0
	}
	if n.up == 1 {
		n.coll.t = t
		mfs, err := n.reg.Gather()
		if err != nil {
			n.err = fmt.Errorf("backfill: node %s at %s: %w", n.name, t.UTC().Format(time.RFC3339), err)
			return
		}
		for _, mf := range mfs {
			if keep != nil && !keep[mf.GetName()] {
				continue
			}
			c := add(mf.GetName(), mf.GetHelp(), mf.GetType())
			for _, m := range mf.Metric {
				c.lines = appendSample(c.lines, c.name, m, n.extra, ts)
				c.samples++
			}
		}
	}
	if keep == nil || keep["up"] {
		c := add("up", upHelp, dto.MetricType_GAUGE)
		c.lines = appendUp(c.lines, n.extra, n.up, ts)
		c.samples++
	}
}

// pinned serves the source at t, as an unchecked collector.
type pinned struct {
	src *sim.Source
	t   time.Time
}

func (p *pinned) Describe(chan<- *prometheus.Desc) {}

func (p *pinned) Collect(ch chan<- prometheus.Metric) {
	c, err := p.src.At(p.t)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(err), err)
		return
	}
	if err := c.Update(ch); err != nil {
		ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(err), err)
	}
}

type label struct{ name, value string }

// extraLabels returns the target labels of a node's scrape.
func extraLabels(opts Options, cluster, nodeName string) []label {
	ls := []label{{"instance", nodeName}, {"job", opts.Job}}
	if opts.ClusterLabel != "-" {
		ls = append(ls, label{opts.ClusterLabel, cluster})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].name < ls[j].name })
	return ls
}

// appendSample writes one sample line: the metric's own labels, then the
// target labels it lacks (a label it already has keeps its value: the
// exporter's node is the target's node), the value and the timestamp.
func appendSample(b []byte, name string, m *dto.Metric, extra []label, ts []byte) []byte {
	b = append(b, name...)
	b = append(b, '{')
	n := 0
	for _, lp := range m.Label {
		b = appendLabel(b, n, lp.GetName(), lp.GetValue())
		n++
	}
	has := func(name string) bool {
		return slices.ContainsFunc(m.Label, func(lp *dto.LabelPair) bool { return lp.GetName() == name })
	}
	for _, l := range extra {
		if !has(l.name) {
			b = appendLabel(b, n, l.name, l.value)
			n++
		}
	}
	if !has("node") {
		b = appendLabel(b, n, "node", instanceOf(extra))
	}
	b = append(b, '}', ' ')
	var v float64
	switch {
	case m.Gauge != nil:
		v = m.Gauge.GetValue()
	case m.Counter != nil:
		v = m.Counter.GetValue()
	case m.Untyped != nil:
		v = m.Untyped.GetValue()
	default:
		v = math.NaN()
	}
	b = appendValue(b, v)
	b = append(b, ' ')
	b = append(b, ts...)
	return append(b, '\n')
}

func appendUp(b []byte, extra []label, v float64, ts []byte) []byte {
	b = append(b, "up{"...)
	n := 0
	for _, l := range extra {
		b = appendLabel(b, n, l.name, l.value)
		n++
	}
	b = appendLabel(b, n, "node", instanceOf(extra))
	b = append(b, '}', ' ')
	b = appendValue(b, v)
	b = append(b, ' ')
	b = append(b, ts...)
	return append(b, '\n')
}

func instanceOf(extra []label) string {
	for _, l := range extra {
		if l.name == "instance" {
			return l.value
		}
	}
	return ""
}

func appendLabel(b []byte, n int, name, value string) []byte {
	if n > 0 {
		b = append(b, ',')
	}
	b = append(b, name...)
	b = append(b, '=', '"')
	if !strings.ContainsAny(value, "\\\"\n") {
		b = append(b, value...)
		return append(b, '"')
	}
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendTimestamp writes Unix milliseconds as OpenMetrics seconds.
func appendTimestamp(b []byte, ms int64) []byte {
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	b = strconv.AppendInt(b, sec, 10)
	if frac != 0 {
		b = append(b, '.')
		b = append(b, fmt.Sprintf("%03d", frac)...)
	}
	return b
}

// famFile is the temporary file of one family's sample lines.
type famFile struct {
	name, help string
	typ        dto.MetricType
	f          *os.File
	w          *bufio.Writer
}

type spill struct {
	dir  string
	fams map[string]*famFile
}

func (s *spill) family(name, help string, typ dto.MetricType) (*famFile, error) {
	if f, ok := s.fams[name]; ok {
		if f.typ != typ {
			return nil, fmt.Errorf("backfill: family %s is a %s and a %s", name, f.typ, typ)
		}
		return f, nil
	}
	f, err := os.CreateTemp(s.dir, "gpuledger-openmetrics-*")
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	ff := &famFile{name: name, help: help, typ: typ, f: f, w: bufio.NewWriterSize(f, 64<<10)}
	s.fams[name] = ff
	return ff, nil
}

// writeTo writes the families in name order, each under its metadata, and
// the closing "# EOF".
func (s *spill) writeTo(w io.Writer) error {
	names := make([]string, 0, len(s.fams))
	for n := range s.fams {
		names = append(names, n)
	}
	sort.Strings(names)
	bw := bufio.NewWriterSize(w, 256<<10)
	for _, n := range names {
		f := s.fams[n]
		if err := f.w.Flush(); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		if _, err := f.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		fam, typ := n, "gauge"
		switch f.typ {
		case dto.MetricType_COUNTER:
			// An OpenMetrics counter family is named without _total.
			if strings.HasSuffix(n, "_total") {
				typ, fam = "counter", strings.TrimSuffix(n, "_total")
			} else {
				typ = "unknown"
			}
		case dto.MetricType_UNTYPED:
			typ = "unknown"
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", fam, escapeHelp(f.help), fam, typ)
		if _, err := io.Copy(bw, f.f); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
	}
	if _, err := bw.WriteString("# EOF\n"); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	return nil
}

func escapeHelp(h string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(h)
}

func (s *spill) close() {
	for _, f := range s.fams {
		f.f.Close()
		os.Remove(f.f.Name())
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
