package generate

import (
	"fmt"
	"math"
	"strconv"
)

// numProjects is the number of tenant organisations, as in the Alibaba
// spot-GPU trace whose organisation shares the skew follows.
const numProjects = 84

// shareSegments fix the cumulative share of GPU-seconds of the top
// projects: the top one holds 32 %, the top five 80 %, the top ten 90 %.
// Inside a segment shares fall as rank^-shareExponent.
var shareSegments = []struct {
	first, last int // ranks, 1-based, inclusive
	total       float64
}{{1, 1, 0.32}, {2, 5, 0.48}, {6, 10, 0.10}, {11, numProjects, 0.10}}

// shareExponent is the power-law exponent inside a segment. With 2 the
// table also follows the shape of the published organisation shares
// (about 26 %, 12 %, 6 % and 4 % for ranks two to five, under 0.02 % at
// the end of the tail).
const shareExponent = 2

// shareTable returns the target share of GPU-seconds of each project by
// rank; it is non-increasing and sums to one.
func shareTable() []float64 {
	s := make([]float64, numProjects)
	for _, seg := range shareSegments {
		var norm float64
		for k := seg.first; k <= seg.last; k++ {
			norm += math.Pow(float64(k), -shareExponent)
		}
		for k := seg.first; k <= seg.last; k++ {
			s[k-1] = seg.total * math.Pow(float64(k), -shareExponent) / norm
		}
	}
	return s
}

// namedProjects name the largest tenants after AI_INFN's communities; the
// others are proj-NN, NN being the rank.
var namedProjects = []string{
	"cms", "atlas", "lhcb", "virgo", "km3net", "cygno", "ml-infn", "alice",
	"juno", "darkside", "belle2", "euclid",
}

func projectName(rank int) string { // rank is 1-based
	if rank <= len(namedProjects) {
		return namedProjects[rank-1]
	}
	return fmt.Sprintf("proj-%02d", rank)
}

// fpgaProjects are the projects that run FPGA kernels, with their weights.
var fpgaProjects = []struct {
	name   string
	weight float64
}{{"ml-infn", 0.5}, {"cms", 0.3}, {"lhcb", 0.2}}

// project is one tenant: a namespace, a Kueue LocalQueue feeding a
// ClusterQueue of the same name, and its users.
type project struct {
	name    string
	share   float64
	users   []string
	weights []float64 // Zipf weights of users
	fpga    bool
}

// usersFor returns how many users a project of the given share has: 31 for
// the largest, one or two in the tail.
func usersFor(share float64) int { return 1 + int(60*math.Pow(share, 0.6)) }

// userExponent is the Zipf exponent of the jobs of a project's users.
const userExponent = 1.1

// Given names and surnames from which usernames (initial + surname, as
// institutional accounts often are) are made.
var (
	givenNames = []string{
		"marco", "giulia", "luca", "francesca", "andrea", "chiara", "matteo", "sara", "alessandro",
		"elena", "davide", "martina", "simone", "valentina", "stefano", "federica", "paolo", "silvia",
		"lorenzo", "anna", "giorgio", "laura", "tommaso", "irene", "nicola", "beatrice", "riccardo",
		"ottavia", "emanuele", "ylenia", "umberto", "hannah", "kevin", "wei", "quentin", "zeno",
	}
	surnames = []string{
		"rossi", "russo", "ferrari", "esposito", "bianchi", "romano", "colombo", "ricci", "marino",
		"greco", "bruno", "gallo", "conti", "deluca", "mancini", "costa", "giordano", "rizzo",
		"lombardi", "moretti", "barbieri", "fontana", "santoro", "mariani", "rinaldi", "caruso",
		"ferrara", "galli", "martini", "leone", "longo", "gentile", "martinelli", "vitale",
		"lombardo", "serra", "coppola", "desantis", "dangelo", "marchetti", "parisi", "villa",
		"conte", "ferraro", "ferri", "fabbri", "bianco", "marini", "grasso", "valentini",
	}
)

// userNamer hands out unique usernames.
type userNamer struct {
	r    *rng
	used map[string]bool
}

func (n *userNamer) next() string {
	base := givenNames[n.r.intn(len(givenNames))][:1] + surnames[n.r.intn(len(surnames))]
	name := base
	for i := 2; n.used[name]; i++ {
		name = base + strconv.Itoa(i)
	}
	n.used[name] = true
	return name
}

// hubOnlyUsers is the number of JupyterHub users with no batch project
// (students, newcomers).
const hubOnlyUsers = 30

// tenants are the projects, by rank, and the JupyterHub users.
type tenants struct {
	projects    []project
	shares      []float64 // target shares, by rank
	fpga        []int     // indexes of the FPGA projects
	fpgaWeights []float64 // their weights
	hubUsers    []string
	hubWeights  []float64

	// Balancing state: GPU-seconds (milli-GPU-seconds inside the window)
	// given to each project so far, and their total.
	alloc []float64
	total float64
}

func newTenants(seed uint64) *tenants {
	namer := &userNamer{r: newRNG(seed, "users"), used: map[string]bool{}}
	shares := shareTable()
	t := &tenants{shares: shares, alloc: make([]float64, numProjects)}
	for i, s := range shares {
		p := project{name: projectName(i + 1), share: s}
		for k := range usersFor(s) {
			p.users = append(p.users, namer.next())
			p.weights = append(p.weights, math.Pow(float64(k+1), -userExponent))
		}
		t.projects = append(t.projects, p)
	}
	for _, f := range fpgaProjects {
		for i := range t.projects {
			if t.projects[i].name == f.name {
				t.projects[i].fpga = true
				t.fpga = append(t.fpga, i)
				t.fpgaWeights = append(t.fpgaWeights, f.weight)
			}
		}
	}
	for _, p := range t.projects {
		t.hubUsers = append(t.hubUsers, p.users...)
	}
	for range hubOnlyUsers {
		t.hubUsers = append(t.hubUsers, namer.next())
	}
	// Notebook use is skewed too, but less than batch use.
	order := namer.r
	for k := range t.hubUsers {
		j := k + order.intn(len(t.hubUsers)-k)
		t.hubUsers[k], t.hubUsers[j] = t.hubUsers[j], t.hubUsers[k]
		t.hubWeights = append(t.hubWeights, math.Pow(float64(k+1), -0.7))
	}
	return t
}

// pick chooses the project of a job that will hold x milli-GPU-seconds
// inside the window, so that the realised shares of GPU-seconds follow the
// share table closely whatever the sizes of the jobs: the job goes to a
// project drawn in proportion to the room it has left under its target
// share once the job is counted; when no project has that much room (a job
// large against the total so far), to the project furthest below its
// target. Jobs wholly outside the window (x = 0) are drawn from the table.
func (t *tenants) pick(r *rng, x float64) int {
	if x <= 0 {
		return r.pick(t.shares)
	}
	total := t.total + x
	var room float64
	best, bestDeficit := 0, math.Inf(-1)
	for i, p := range t.projects {
		d := p.share*total - t.alloc[i]
		if d > bestDeficit {
			best, bestDeficit = i, d
		}
		if d > x {
			room += d - x
		}
	}
	choice := best
	if room > 0 {
		u := r.float() * room
		for i, p := range t.projects {
			d := p.share*total - t.alloc[i] - x
			if d <= 0 {
				continue
			}
			choice = i
			if u < d {
				break
			}
			u -= d
		}
	}
	t.alloc[choice] += x
	t.total = total
	return choice
}

// user draws a user of project p.
func (t *tenants) user(r *rng, p int) string {
	pr := &t.projects[p]
	return pr.users[r.pick(pr.weights)]
}

// fpgaProject draws the project of an FPGA job.
func (t *tenants) fpgaProject(r *rng) int { return t.fpga[r.pick(t.fpgaWeights)] }

// hubUser draws the user of a notebook.
func (t *tenants) hubUser(r *rng) string { return t.hubUsers[r.pick(t.hubWeights)] }
