package trace

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gpuledger/gpuledger/sim/scenario"
)

// PhillyJob is one row of the Chronus Philly-derived job trace, with the
// columns the import uses.
type PhillyJob struct {
	ID       string
	VC       string // the `user` column: a Philly virtual cluster (a team)
	GPUs     int64
	Submit   int64 // seconds from trace start
	Duration int64 // seconds
}

// ReadPhillyJobs reads trace_job_Philly_MIX1*.csv.
func ReadPhillyJobs(r io.Reader, name string) ([]PhillyJob, error) {
	t, err := newTable(r, name, "job_id", "user", "num_gpu", "submit_time", "duration")
	if err != nil {
		return nil, err
	}
	var jobs []PhillyJob
	seen := map[string]int{}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return jobs, nil
		}
		j := PhillyJob{VC: t.str("user")}
		if j.ID, err = t.key("job_id", "job", "missing job id", seen); err != nil {
			return nil, err
		}
		if j.VC == "" {
			return nil, t.errorf("user", "missing virtual cluster")
		}
		if j.GPUs, err = t.int("num_gpu"); err != nil {
			return nil, err
		}
		if j.GPUs < 0 || j.GPUs > maxPodGPUs {
			return nil, t.errorf("num_gpu", "%d GPUs out of range (0..%d)", j.GPUs, maxPodGPUs)
		}
		if j.Submit, err = t.int("submit_time"); err != nil {
			return nil, err
		}
		if j.Submit < 0 {
			return nil, t.errorf("submit_time", "negative time %d", j.Submit)
		}
		if j.Duration, err = t.int("duration"); err != nil {
			return nil, err
		}
		if j.Duration < 0 {
			return nil, t.errorf("duration", "negative duration %d", j.Duration)
		}
		jobs = append(jobs, j)
	}
}

// Philly builds a scenario from a window of the Philly-derived trace: each
// job that holds GPUs in the window becomes one pod, or 8-GPU worker pods
// when it asks for more than a node has, on synthesised 8-GPU nodes (as
// many as first-fit placement needs). Virtual clusters become projects.
func Philly(jobs []PhillyJob, opt Options) (*scenario.Scenario, error) {
	s, _, err := buildPhilly(jobs, opt)
	return s, err
}

func buildPhilly(jobs []PhillyJob, opt Options) (*scenario.Scenario, map[string]tenant, error) {
	w, err := opt.check()
	if err != nil {
		return nil, nil, err
	}
	if opt.MIGShare != 0 {
		return nil, nil, fmt.Errorf("MIG retyping applies to %s only", FormatAlibabaV2023)
	}
	cluster := opt.cluster(FormatPhillyChronus)
	s := &scenario.Scenario{
		Cluster:        cluster,
		Start:          opt.at(w.start),
		End:            opt.at(w.end),
		ScrapeInterval: scenario.Duration(opt.scrapeInterval()),
		Source:         opt.Source,
	}
	if s.Source == "" {
		s.Source = fmt.Sprintf("%s trace, trace seconds [%d, %d) with second 0 at %s; seed %d",
			FormatPhillyChronus, w.start, w.end, opt.Epoch.UTC().Format(time.RFC3339), opt.Seed)
	}

	// Projects and their user pools come from the whole file, so that a
	// job's tenant does not depend on the window.
	projects := map[string]string{} // project → VC
	jobsPerVC := map[string]int64{}
	for _, j := range jobs {
		p := dnsLabel(j.VC)
		if other, ok := projects[p]; ok && other != j.VC {
			return nil, nil, fmt.Errorf("virtual clusters %q and %q both map to project %q", other, j.VC, p)
		}
		projects[p] = j.VC
		jobsPerVC[j.VC]++
	}

	type jobRef struct {
		job     *PhillyJob
		project string
	}
	owner := map[string]jobRef{} // pod → job
	var reqs []request
	for i := range jobs {
		j := &jobs[i]
		start, end := j.Submit, j.Submit+j.Duration
		if j.GPUs == 0 || end <= start || !w.overlaps(start, end) {
			continue
		}
		ref := jobRef{job: j, project: dnsLabel(j.VC)}
		if j.GPUs <= PhillyGPUsPerNode {
			name := "philly-job-" + dnsLabel(j.ID)
			owner[name] = ref
			reqs = append(reqs, request{name: name, start: start, end: end, gpus: int(j.GPUs)})
			continue
		}
		left := int(j.GPUs)
		for k := 0; left > 0; k++ {
			g := min(left, PhillyGPUsPerNode)
			name := fmt.Sprintf("philly-job-%s-worker-%d", dnsLabel(j.ID), k)
			owner[name] = ref
			reqs = append(reqs, request{name: name, start: start, end: end, gpus: g})
			left -= g
		}
	}
	sortRequests(reqs)

	pl, err := newPlacer(nil)
	if err != nil {
		return nil, nil, err
	}
	pl.grow = func() (scenario.Node, error) {
		n := phillyNode(len(s.Nodes), cluster, opt.Seed)
		s.Nodes = append(s.Nodes, n)
		return n, nil
	}
	placed, err := pl.run(reqs)
	if err != nil {
		return nil, nil, fmt.Errorf("window [%d, %d) of %s: %w", w.start, w.end, FormatPhillyChronus, err)
	}
	if len(s.Nodes) == 0 { // an empty window still describes a cluster
		s.Nodes = append(s.Nodes, phillyNode(0, cluster, opt.Seed))
	}

	tenants := make(map[string]tenant, len(reqs))
	tc := newTenancy()
	s.Pods = make([]scenario.Pod, 0, len(reqs))
	for i, r := range reqs {
		ref := owner[r.name]
		// Workers of one job draw the same tenant: the generator is seeded
		// by the job.
		rng := rand.New(rand.NewPCG(opt.Seed, hash64(opt.Seed, "tenant/philly/"+ref.job.ID)))
		tn := tenant{project: ref.project, user: pickUser(rng, ref.project, usersIn(jobsPerVC[ref.job.VC]))}
		end := opt.at(r.end)
		pod := scenario.Pod{
			Name: r.name, UID: podUID(opt.Seed, cluster, r.name), Node: s.Nodes[placed[i].node].Name,
			Devices: placed[i].devices, Start: opt.at(r.start), End: &end, Profile: activity(rng, false),
		}
		tn.apply(&pod)
		tc.add(tn)
		tenants[r.name] = tn
		s.Pods = append(s.Pods, pod)
	}
	tc.fill(s)
	if err := scenario.Validate(s); err != nil {
		return nil, nil, fmt.Errorf("imported scenario does not validate: %w", err)
	}
	return s, tenants, nil
}

func phillyNode(i int, cluster string, seed uint64) scenario.Node {
	name := fmt.Sprintf("philly-node-%04d", i)
	n := scenario.Node{Name: name, Labels: map[string]string{
		labelGPUProduct: productLabel(PhillyModel),
		labelGPUCount:   strconv.Itoa(PhillyGPUsPerNode),
	}}
	for g := range PhillyGPUsPerNode {
		n.GPUs = append(n.GPUs, scenario.GPU{Index: g, UUID: deviceUUID("GPU", seed, cluster, name, g), Model: PhillyModel})
	}
	return n
}
