// Package generate builds simulated clusters like INFN's AI_INFN platform
// for any clone of the repository, without the public traces: A100, A30,
// T4 and RTX 5000 GPUs (some MIG-partitioned, some time-sliced), Alveo U55C
// FPGAs, an InterLink virtual node per remote site, JupyterHub notebooks and
// Kueue batch pods whose job mix follows the published statistics of the
// Alibaba GPU v2023 trace, and 84 tenants with a heavy-tailed share of
// GPU-seconds. The same configuration always gives the same scenario.
// docs/generated-clusters.md describes the model and its figures.
package generate

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Defaults and limits of a configuration.
const (
	DefaultNodes          = 20
	DefaultDuration       = 24 * time.Hour
	DefaultScrapeInterval = 15 * time.Second
	DefaultCluster        = "ai-infn-generated"
	DefaultLoad           = 0.65
	DefaultSeed           = 1

	// MaxLoad is the highest target load: above it waiting queues grow
	// without bound.
	MaxLoad = 0.95
	// MaxNodes, MaxDuration and MaxNodeDays bound the size of a scenario:
	// 200 nodes over 30 days are about 300,000 pods and 120 MB of YAML.
	MaxNodes    = 2000
	MaxDuration = 366 * 24 * time.Hour
	MaxNodeDays = 12000
)

// DefaultStart is the default start of the window, fixed so that output is
// reproducible.
var DefaultStart = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid generator configuration")

// Config says what to generate.
type Config struct {
	// Nodes is the number of physical nodes; the InterLink virtual nodes,
	// one per remote site, come on top.
	Nodes int
	// Start and Duration give the scenario's window; both whole seconds.
	Start    time.Time
	Duration time.Duration
	// ScrapeInterval is the scenario's scrape interval.
	ScrapeInterval time.Duration
	// Cluster is the cluster name.
	Cluster string
	// Seed selects the scenario; the same configuration gives the same one.
	Seed uint64
	// Load is the target mean share of local GPU capacity allocated, in
	// (0, MaxLoad].
	Load float64
	// Faults adds one fault of each kind inside the window.
	Faults bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Nodes: DefaultNodes, Start: DefaultStart, Duration: DefaultDuration,
		ScrapeInterval: DefaultScrapeInterval, Cluster: DefaultCluster, Seed: DefaultSeed, Load: DefaultLoad,
	}
}

// Validate checks a configuration; errors wrap ErrConfig.
func (c Config) Validate() error {
	var msgs []string
	bad := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		bad("nodes %d outside [1, %d]", c.Nodes, MaxNodes)
	}
	switch {
	case c.Start.IsZero():
		bad("missing start")
	case !c.Start.Truncate(time.Second).Equal(c.Start):
		bad("start %s is not a whole second", c.Start.Format(time.RFC3339Nano))
	}
	switch {
	case c.Duration < time.Second || c.Duration > MaxDuration:
		bad("duration %s outside [1s, %s]", c.Duration, model.Duration(MaxDuration))
	case c.Duration%time.Second != 0:
		bad("duration %s is not a whole number of seconds", c.Duration)
	case c.Nodes > 0 && float64(c.Nodes)*c.Duration.Hours()/24 > MaxNodeDays:
		bad("%d nodes over %s is more than %d node-days", c.Nodes, model.Duration(c.Duration), MaxNodeDays)
	}
	switch {
	case c.ScrapeInterval < time.Second:
		bad("scrape interval %s is shorter than 1s", c.ScrapeInterval)
	case c.ScrapeInterval%time.Second != 0:
		bad("scrape interval %s is not a whole number of seconds", c.ScrapeInterval)
	}
	if c.Cluster == "" {
		bad("missing cluster name")
	}
	if !(c.Load > 0 && c.Load <= MaxLoad) { // also rejects NaN
		bad("load %v outside (0, %v]", c.Load, MaxLoad)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(msgs, "; "))
	}
	return nil
}

// Generate builds the scenario of a configuration. It is valid
// (scenario.Validate) and depends only on the configuration.
func Generate(cfg Config) (*scenario.Scenario, error) {
	res, err := generate(cfg)
	if err != nil {
		return nil, err
	}
	return res.scenario, nil
}

// result is a generation with what the generator intended, for tests.
type result struct {
	scenario *scenario.Scenario
	jobs     []*job // every job drawn, including those outside the window
	podJobs  []*job // the job of each scenario pod
	hw       *hardware
	ten      *tenants
	winStart int64
	winEnd   int64
}

func generate(cfg Config) (*result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := cfg.Start.UTC()
	origin := start.Add(-warmup)
	hw := buildHardware(cfg.Seed, cfg.Nodes)
	ten := newTenants(cfg.Seed)
	sim := &simulator{
		hw: hw, ten: ten, r: newRNG(cfg.Seed, "placement"),
		winStart: int64(warmup / time.Second),
		winEnd:   int64((warmup + cfg.Duration) / time.Second),
	}
	jobs := arrivals(cfg.Seed, streams(hw, cfg.Load), origin.Unix(), sim.winEnd)
	sim.run(jobs)

	s := &scenario.Scenario{
		Cluster:        cfg.Cluster,
		Start:          start,
		End:            start.Add(cfg.Duration),
		ScrapeInterval: scenario.Duration(cfg.ScrapeInterval),
		Source:         source(cfg),
		Nodes:          hw.nodes,
	}
	tenancy(s, hw, ten)
	var podJobs []*job
	s.Pods, podJobs = sim.pods(origin, newRNG(cfg.Seed, "names"))
	if cfg.Faults {
		s.Faults = faults(newRNG(cfg.Seed, "faults"), hw, s.Start, s.End)
	}
	if err := scenario.Validate(s); err != nil {
		return nil, fmt.Errorf("generated scenario is invalid: %w", err)
	}
	return &result{scenario: s, jobs: jobs, podJobs: podJobs, hw: hw, ten: ten, winStart: sim.winStart, winEnd: sim.winEnd}, nil
}

// source records how to make the scenario again.
func source(cfg Config) string {
	s := fmt.Sprintf("gpuledger sim generate --nodes %d --start %s --duration %s --seed %d --load %v",
		cfg.Nodes, cfg.Start.UTC().Format(time.RFC3339), model.Duration(cfg.Duration), cfg.Seed, cfg.Load)
	if cfg.Cluster != DefaultCluster {
		s += " --cluster " + cfg.Cluster
	}
	if cfg.ScrapeInterval != DefaultScrapeInterval {
		s += " --scrape-interval " + model.Duration(cfg.ScrapeInterval).String()
	}
	if cfg.Faults {
		s += " --faults"
	}
	return s
}

// streams are the arrival processes, each at the rate that keeps its pool
// at the target load: rate = load × capacity / mean size, where the size of
// a job is its milli-GPU (units for notebooks and FPGAs) times its mean
// lifetime (Little's law).
func streams(hw *hardware, load float64) []stream {
	life := batchLifetime.mean()
	maxWhole := hw.maxWhole
	wholeRate := load * float64(hw.wholeGPUs()) * accounting.MilliPerGPU / (meanWholeMilli(maxWhole) * life)
	fracRate := load * float64(len(hw.shared)) * accounting.MilliPerGPU / (meanMilli() * life)
	out := []stream{
		{name: "batch whole", rate: wholeRate, draw: func(r *rng, j *job) {
			j.class = jobBatch
			j.gpus = drawWhole(r, maxWhole)
			j.lifetime = batchLifetime.seconds(r)
			j.profile = batchProfiles.draw(r)
		}},
		{name: "batch fractional", rate: fracRate, draw: func(r *rng, j *job) {
			j.class = jobBatch
			j.gpus, j.milli = 1, drawMilli(r)
			j.lifetime = batchLifetime.seconds(r)
			j.profile = batchProfiles.draw(r)
		}},
		{name: "offload", rate: offloadShare * (wholeRate + fracRate), draw: func(r *rng, j *job) {
			j.class = jobOffload
			j.gpus = drawAny(r)
			j.lifetime = batchLifetime.seconds(r)
			j.profile = offloadProfiles.draw(r)
		}},
	}
	for _, g := range hw.groups {
		out = append(out, stream{name: "notebook " + g.name, diurnal: true,
			rate: load * float64(len(g.units)) / notebookLifetime.mean(),
			draw: func(r *rng, j *job) {
				j.class = jobNotebook
				j.group = g
				j.lifetime = notebookLifetime.seconds(r)
				j.profile = notebookProfiles.draw(r)
			}})
	}
	if f := hw.fpga; len(f.units) > 0 {
		out = append(out, stream{name: "fpga", rate: load * float64(len(f.units)) / fpgaLifetime.mean(),
			draw: func(r *rng, j *job) {
				j.class = jobFPGA
				j.group = f
				j.lifetime = fpgaLifetime.seconds(r)
				j.profile = fpgaProfiles.draw(r)
			}})
	}
	return out
}

// Namespaces, queues and labels of the tenancy.
const (
	hubNamespace = "hub"
	hubProject   = "jupyterhub"
	localQueue   = "batch"
)

// tenancy adds the namespaces, LocalQueues and ClusterQueues: one of each
// per project, the ClusterQueue named after the project (the default
// attribution takes the project from it), with nominal quotas
// proportional to the project's share of the batch GPUs and FPGAs.
func tenancy(s *scenario.Scenario, hw *hardware, ten *tenants) {
	s.Namespaces = append(s.Namespaces, scenario.Namespace{
		Name: hubNamespace, Labels: map[string]string{attribution.LabelProject: hubProject}})
	for _, p := range ten.projects {
		s.Namespaces = append(s.Namespaces, scenario.Namespace{
			Name: p.name, Labels: map[string]string{attribution.LabelProject: p.name}})
		s.Queues = append(s.Queues, scenario.Queue{Namespace: p.name, Name: localQueue, ClusterQueue: p.name})
		quota := map[string]int64{
			accounting.ResourceGPU: max(1, int64(math.Ceil(p.share*float64(len(hw.gpus))))),
		}
		if p.fpga && len(hw.fpga.units) > 0 {
			quota[fpgaResource] = int64(len(hw.fpga.units))
		}
		s.ClusterQueues = append(s.ClusterQueues, scenario.ClusterQueue{Name: p.name, Quota: quota})
	}
}

// pods turns the jobs that overlap the window into scenario pods, in start
// order. Jobs still running at the end of the window have no end.
func (s *simulator) pods(origin time.Time, r *rng) ([]scenario.Pod, []*job) {
	at := func(sec int64) time.Time { return origin.Add(time.Duration(sec) * time.Second) }
	seq := map[string]int{}
	var out []scenario.Pod
	var jobs []*job
	for _, j := range s.started {
		if j.start >= s.winEnd || j.end() <= s.winStart {
			continue
		}
		p := scenario.Pod{
			UID:     r.uuid(true),
			Node:    s.hw.nodes[j.node].Name,
			Start:   at(j.start),
			Profile: j.profile,
		}
		if j.end() <= s.winEnd {
			end := at(j.end())
			p.End = &end
		}
		if j.class == jobNotebook {
			seq[j.user]++
			p.Namespace = hubNamespace
			p.Name = fmt.Sprintf("jupyter-%s-%d", j.user, seq[j.user])
			p.Annotations = map[string]string{attribution.AnnotationJupyterHubUser: j.user}
			p.Devices = []scenario.DeviceRef{j.group.units[j.held[0]].ref}
			out, jobs = append(out, p), append(jobs, j)
			continue
		}
		proj := s.ten.projects[j.project].name
		p.Namespace = proj
		p.Labels = map[string]string{attribution.LabelKueueQueue: localQueue}
		switch {
		case j.viaSA:
			p.ServiceAccount = j.user
		case j.user != attribution.Unknown:
			p.Labels[attribution.LabelUser] = j.user
		}
		verb := "job"
		switch j.class {
		case jobOffload:
			verb = "offload"
			p.Requests = map[string]int64{accounting.ResourceGPU: int64(j.gpus)}
		case jobFPGA:
			verb = "hls"
			p.Devices = []scenario.DeviceRef{j.group.units[j.held[0]].ref}
		default:
			switch {
			case j.milli > 0:
				verb = "infer"
				g := s.hw.gpus[j.held[0]]
				p.Devices = []scenario.DeviceRef{{Resource: accounting.ResourceGPUShared,
					ID: fmt.Sprintf("%s::%d", g.uuid, j.slot), Milli: j.milli}}
			default:
				if j.gpus > 1 {
					verb = "train"
				}
				for _, gi := range j.held {
					p.Devices = append(p.Devices, scenario.DeviceRef{Resource: accounting.ResourceGPU, ID: s.hw.gpus[gi].uuid})
				}
			}
		}
		seq[proj]++
		p.Name = fmt.Sprintf("%s-%s-%05d-%s", proj, verb, seq[proj], r.suffix(5))
		out, jobs = append(out, p), append(jobs, j)
	}
	return out, jobs
}

// faults places one fault of each kind at fixed fractions of the window:
// an exporter restart (30 s) at 20 % and a scrape gap (5 min) at 40 % on
// two nodes drawn from the seed, an aggregator crash at 60 % (7 s off the
// scrape grid when the window allows) and a database outage (2 min) at
// 80 %. Durations are cut at the end of the window.
func faults(r *rng, hw *hardware, start, end time.Time) []scenario.Fault {
	d := end.Sub(start) / time.Second
	at := func(frac float64) time.Time {
		return start.Add(time.Duration(float64(d)*frac) * time.Second)
	}
	last := func(t time.Time, want time.Duration) scenario.Duration {
		return scenario.Duration(min(want, end.Sub(t)))
	}
	a := r.intn(hw.physical)
	b := a
	if hw.physical > 1 {
		b = (a + 1 + r.intn(hw.physical-1)) % hw.physical
	}
	crash := at(0.6)
	if c := crash.Add(7 * time.Second); c.Before(end) {
		crash = c
	}
	restart, gap, outage := at(0.2), at(0.4), at(0.8)
	return []scenario.Fault{
		{Kind: scenario.FaultExporterRestart, Node: hw.nodes[a].Name, At: restart, Duration: last(restart, 30*time.Second)},
		{Kind: scenario.FaultScrapeGap, Node: hw.nodes[b].Name, At: gap, Duration: last(gap, 5*time.Minute)},
		{Kind: scenario.FaultAggregatorCrash, At: crash},
		{Kind: scenario.FaultDatabaseOutage, At: outage, Duration: last(outage, 2*time.Minute)},
	}
}
