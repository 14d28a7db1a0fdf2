package trace

import (
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Org is a tenant organisation and its weight when projects are sampled.
type Org struct {
	// Name is the organisation as the shares file spells it.
	Name string
	// Project is the project, namespace and ClusterQueue name the
	// organisation becomes (a DNS label).
	Project string
	// Jobs sizes the project's user pool: bits.Len(jobs) users.
	Jobs int64
	// GPUSeconds is the organisation's weight.
	GPUSeconds float64
}

// ReadOrgs reads org_by_gpu_seconds.derived.csv (columns organization, jobs,
// gpu_seconds; others are ignored). Organisation N becomes project "org-N".
func ReadOrgs(r io.Reader, name string) ([]Org, error) {
	t, err := newTable(r, name, "organization", "jobs", "gpu_seconds")
	if err != nil {
		return nil, err
	}
	var orgs []Org
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		o := Org{Name: t.str("organization")}
		if o.Name == "" {
			return nil, t.errorf("organization", "missing value")
		}
		o.Project = "org-" + dnsLabel(o.Name)
		if o.Jobs, err = t.int("jobs"); err != nil {
			return nil, err
		}
		if o.Jobs < 0 {
			return nil, t.errorf("jobs", "negative job count %d", o.Jobs)
		}
		if o.GPUSeconds, err = t.float("gpu_seconds"); err != nil {
			return nil, err
		}
		if o.GPUSeconds < 0 {
			return nil, t.errorf("gpu_seconds", "negative GPU-seconds %v", o.GPUSeconds)
		}
		orgs = append(orgs, o)
	}
	if _, err := newPicker(orgs); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return orgs, nil
}

// UniformOrgsCount is how many projects UniformOrgs makes.
const UniformOrgsCount = 10

// UniformOrgs is the built-in tenant set used without a shares file:
// projects project-01 … project-10 with equal weights and 10 users each.
func UniformOrgs() []Org {
	orgs := make([]Org, UniformOrgsCount)
	for i := range orgs {
		name := fmt.Sprintf("project-%02d", i+1)
		orgs[i] = Org{Name: name, Project: name, Jobs: 1 << 9, GPUSeconds: 1}
	}
	return orgs
}

// picker draws organisations in proportion to their GPU-seconds.
type picker struct {
	orgs []Org
	cum  []float64
}

func newPicker(orgs []Org) (*picker, error) {
	if len(orgs) == 0 {
		return nil, fmt.Errorf("no organisations")
	}
	p := &picker{orgs: orgs, cum: make([]float64, len(orgs))}
	seen := map[string]string{}
	total := 0.0
	for i, o := range orgs {
		if other, dup := seen[o.Project]; dup {
			return nil, fmt.Errorf("organisations %q and %q both map to project %q", other, o.Name, o.Project)
		}
		seen[o.Project] = o.Name
		total += o.GPUSeconds
		p.cum[i] = total
	}
	if total <= 0 {
		return nil, fmt.Errorf("organisations hold no GPU-seconds")
	}
	return p, nil
}

func (p *picker) pick(r *rand.Rand) *Org {
	x := r.Float64() * p.cum[len(p.cum)-1]
	i := sort.Search(len(p.cum), func(i int) bool { return p.cum[i] > x })
	if i == len(p.cum) { // only reachable through rounding
		i--
	}
	return &p.orgs[i]
}

// Zipf exponent of the users within a project: the first user of a project
// runs about 2.5 times as many pods as the second.
const userZipfS = 1.3

// usersIn is the size of a project's user pool.
func usersIn(jobs int64) int {
	return max(1, bits.Len64(uint64(max(jobs, 0))))
}

// pickUser draws a user of a project with a heavy tail (Zipf).
func pickUser(r *rand.Rand, project string, pool int) string {
	k := uint64(0)
	if pool > 1 {
		k = rand.NewZipf(r, userZipfS, 1, uint64(pool-1)).Uint64()
	}
	return fmt.Sprintf("%s-u%02d", project, k+1)
}

// Names of the synthetic tenancy objects.
const (
	batchQueue           = "batch"
	labelTraceModel      = "gpuledger.io/trace-model"
	labelGPUProduct      = "nvidia.com/gpu.product"
	labelGPUCount        = "nvidia.com/gpu.count"
	labelMIGConfig       = "nvidia.com/mig.config"
	labelGPUReplicas     = "nvidia.com/gpu.replicas"
	labelSharingStrategy = "nvidia.com/gpu.sharing-strategy"
	notebookAppLabel     = "app"
	notebookCompLabel    = "component"
)

// tenant is who a pod belongs to and how the platform would label it.
type tenant struct {
	project  string
	user     string
	notebook bool // JupyterHub single-user server, else a Kueue batch pod
}

// apply sets the pod's namespace, labels and annotations so that
// attribution.Default resolves the tenant.
func (t tenant) apply(p *scenario.Pod) {
	p.Namespace = t.project
	if t.notebook {
		p.Labels = map[string]string{notebookAppLabel: "jupyterhub", notebookCompLabel: "singleuser-server"}
		p.Annotations = map[string]string{attribution.AnnotationJupyterHubUser: t.user}
		return
	}
	p.Labels = map[string]string{attribution.LabelKueueQueue: batchQueue, attribution.LabelUser: t.user}
}

// tenancy collects the namespaces and queues the pods use.
type tenancy struct {
	namespaces map[string]bool
	queues     map[string]bool
}

func newTenancy() *tenancy {
	return &tenancy{namespaces: map[string]bool{}, queues: map[string]bool{}}
}

func (tc *tenancy) add(t tenant) {
	tc.namespaces[t.project] = true
	if !t.notebook {
		tc.queues[t.project] = true
	}
}

// fill writes the namespaces, LocalQueues and ClusterQueues, sorted.
func (tc *tenancy) fill(s *scenario.Scenario) {
	for _, ns := range sortedKeys(tc.namespaces) {
		s.Namespaces = append(s.Namespaces, scenario.Namespace{
			Name: ns, Labels: map[string]string{attribution.LabelProject: ns},
		})
	}
	for _, p := range sortedKeys(tc.queues) {
		s.Queues = append(s.Queues, scenario.Queue{Namespace: p, Name: batchQueue, ClusterQueue: p})
		s.ClusterQueues = append(s.ClusterQueues, scenario.ClusterQueue{Name: p})
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dnsLabel lowercases s and replaces what a DNS label cannot hold with '-'.
func dnsLabel(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 50 {
		out = strings.TrimRight(out[:50], "-")
	}
	if out == "" {
		out = "x"
	}
	return out
}

// activity draws a pod's activity profile: notebooks are bursty and mostly
// idle, batch pods busy. The traces record no utilisation, so this only
// gives the simulated exporters something plausible to publish.
func activity(r *rand.Rand, notebook bool) scenario.Profile {
	if notebook {
		return scenario.Profile{Kind: scenario.ProfileBursty, Mean: round2(0.05 + 0.30*r.Float64())}
	}
	return scenario.Profile{Kind: scenario.ProfileConstant, Mean: round2(0.50 + 0.45*r.Float64())}
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
