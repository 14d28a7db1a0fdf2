package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/api/auth"
	"github.com/gpuledger/gpuledger/api/auth/authtest"
	"github.com/gpuledger/gpuledger/internal/pgtest"
)

const cluster = "ai-infn"

// t0 is 2026-11-02T08:00:00Z, the start of the test ledger's busy hours.
var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// at is t0 plus h hours and m minutes, in Unix seconds.
func at(h, m int64) int64 { return t0.Unix() + h*3600 + m*60 }

// formula is a project name that a spreadsheet would run as a formula.
const formula = `=HYPERLINK("http://x","y")`

// alloc is an allocation of the test ledger.
func alloc(pod, project, user, class string, weight, start, end int64) observe.Interval {
	x := observe.Interval{
		AllocKey: observe.AllocKey{Node: "n0", Device: "GPU-" + pod, PodUID: "uid-" + pod, Resource: "nvidia.com/gpu"},
		Attrs: observe.Attrs{Class: class, GPUUUID: "GPU-" + pod, Model: "A100", Namespace: project + "-ns",
			Pod: pod, User: user, Project: project},
		Start: start, End: end, EndExact: true, LastSeen: end * 1000, WeightMilli: weight, Devices: 1,
	}
	switch class {
	case "mig":
		x.Profile, x.Resource = "1g.10gb", "nvidia.com/mig-1g.10gb"
	case "shared":
		x.Resource, x.Model = "nvidia.com/gpu.shared", "T4"
	}
	return x
}

// The test ledger:
//
//	cms/bob      a whole GPU, 2026-10-31T22:00 → t0 (2 h in October, 32 h in November)
//	cms/alice    a 1g.10gb slice (143), t0 → t0+2h
//	atlas/carol  a whole GPU, t0+1h → t0+3h; 5 idle minutes at t0+2h
//	atlas/bob    half a shared T4 (500), t0 → t0+4h; 300 idle milli-GPU-s at t0+2h
//	=HYPERLINK…/eve  a whole GPU, t0 → t0+1h
//
// October is closed. Quotas: ClusterQueue cms 2 GPUs, atlas-cq 1 GPU and
// 2 shared GPUs, all from November 1.
var (
	ivBob   = alloc("bob", "cms", "bob", "gpu", 1000, time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC).Unix(), at(0, 0))
	ivAlice = alloc("alice", "cms", "alice", "mig", 143, at(0, 0), at(2, 0))
	ivCarol = alloc("carol", "atlas", "carol", "gpu", 1000, at(1, 0), at(3, 0))
	ivBob2  = alloc("bob2", "atlas", "bob", "shared", 500, at(0, 0), at(4, 0))
	ivEve   = alloc("eve", formula, "eve", "gpu", 1000, at(0, 0), at(1, 0))
)

// newLedger fills a ledger through ApplyWindow.
func newLedger(t *testing.T) *ledger.Store {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC)
	s, err := ledger.Open(ctx, pgtest.New(t), ledger.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	all := []observe.Interval{ivBob, ivAlice, ivCarol, ivBob2, ivEve}
	windows := []observe.Window{
		{Cluster: cluster, From: ivBob.Start, To: at(4, 0), Intervals: all},
		{Cluster: cluster, From: at(2, 0), To: at(2, 5), Intervals: []observe.Interval{ivCarol, ivBob2},
			Usage: []observe.Usage{
				{AllocKey: ivCarol.AllocKey, UsedMilliGPUSeconds: 0, IdleMilliGPUSeconds: 300_000},
				{AllocKey: ivBob2.AllocKey, UsedMilliGPUSeconds: 120_000, IdleMilliGPUSeconds: 300},
			}},
	}
	for _, w := range windows {
		if err := s.ApplyWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseMonth(ctx, cluster, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	nov1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if err := s.UpsertQuotas(ctx, []ledger.Quota{
		{Cluster: cluster, Queue: "cms", Resource: "nvidia.com/gpu", Project: "cms", From: nov1, NominalMilli: 2000},
		{Cluster: cluster, Queue: "atlas-cq", Resource: "nvidia.com/gpu", Project: "atlas", From: nov1, NominalMilli: 1000},
		{Cluster: cluster, Queue: "atlas-cq", Resource: "nvidia.com/gpu.shared", Project: "atlas", From: nov1, NominalMilli: 2000},
		{Cluster: cluster, Queue: "atlas-cq", Resource: "cpu", Project: "atlas", From: nov1, NominalMilli: 64000},
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// env is a server on a real ledger with a real issuer.
type env struct {
	is  *authtest.Issuer
	srv *Server
	url string
	reg *prometheus.Registry
}

// The test policy's groups.
const (
	adminGroup   = "gpuledger-admins"
	atlasManager = "atlas/managers"
)

func newEnv(t *testing.T, l Ledger, change func(*Options)) *env {
	t.Helper()
	is := authtest.New(t, time.Now().Truncate(time.Second))
	v, err := auth.NewVerifier(context.Background(), auth.Options{Issuer: is.URL, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts := Options{Ledger: l, Authenticator: v, Registry: reg,
		Policy: auth.Policy{AdminGroup: "/" + adminGroup, Managers: map[string][]string{"atlas": {atlasManager}}}}
	if change != nil {
		change(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &env{is: is, srv: s, url: hs.URL, reg: reg}
}

// get requests path with token ("" : none) and extra headers (name,
// value pairs).
func (e *env) get(t *testing.T, token, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp, b
}

// jsonRows decodes a tabular JSON answer.
func jsonRows(t *testing.T, b []byte) (map[string]json.RawMessage, []map[string]any) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, b)
	}
	var rows []map[string]any
	if err := json.Unmarshal(doc["rows"], &rows); err != nil {
		t.Fatalf("rows: %v\n%s", err, b)
	}
	return doc, rows
}

// groups returns the "project/user" of each row, sorted.
func groups(rows []map[string]any) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r["project"].(string)+"/"+r["user"].(string))
	}
	slices.Sort(out)
	return out
}

func problemOf(t *testing.T, resp *http.Response, b []byte) Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != ProblemContentType {
		t.Errorf("Content-Type %q, want %s; body %s", ct, ProblemContentType, b)
	}
	var p Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("problem: %v\n%s", err, b)
	}
	if p.Status != resp.StatusCode || p.Title == "" || !strings.HasPrefix(p.Type, problemBase) {
		t.Errorf("problem %+v for status %d", p, resp.StatusCode)
	}
	return p
}

// roles are the tokens of the role × endpoint × scope matrix.
type roles struct{ admin, manager, bob, carol, nouser, nogroups, rootNoGroups string }

func (e *env) roles() roles {
	c := e.is.Claims("ghost", "cms")
	delete(c, "preferred_username")
	return roles{
		admin:   e.is.Token("root", adminGroup),
		manager: e.is.Token("mgr", "atlas", atlasManager),
		bob:     e.is.Token("bob", "cms", "atlas"),
		carol:   e.is.Token("carol", "atlas"),
		nouser:  e.is.Sign(map[string]any{"alg": "RS256", "kid": authtest.RSAKeyID}, c, e.is.RSA),
		// Tokens without a groups claim: no role beyond the user's own rows.
		nogroups:     e.is.Token("bob"),
		rootNoGroups: e.is.Token("root"),
	}
}

// TestRoleMatrix runs every role against every endpoint and scope: the
// status, and for tables the groups answered.
func TestRoleMatrix(t *testing.T) {
	e := newEnv(t, newLedger(t), nil)
	r := e.roles()
	const usage = "/api/v1/usage?from=2026-10-31T00:00:00Z&to=2026-11-03T00:00:00Z&group_by=project,user"
	const idle = "/api/v1/idle?from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z"
	const quota = "/api/v1/quota?from=2026-11-02T08:00:00Z&to=2026-11-02T12:00:00Z"
	everyone := []string{formula + "/eve", "atlas/bob", "atlas/carol", "cms/alice", "cms/bob"}
	cases := []struct {
		role, token, path string
		status            int
		groups            []string // nil: not checked
	}{
		{"admin", r.admin, usage, 200, everyone},
		{"admin", r.admin, usage + "&user=bob", 200, []string{"atlas/bob", "cms/bob"}},
		{"admin", r.admin, usage + "&project=cms&resource=mig", 200, []string{"cms/alice"}},
		{"manager", r.manager, usage, 200, []string{"atlas/bob", "atlas/carol"}},
		{"manager", r.manager, usage + "&project=atlas", 200, []string{"atlas/bob", "atlas/carol"}},
		{"manager", r.manager, usage + "&user=bob", 200, []string{"atlas/bob"}},
		{"manager", r.manager, usage + "&project=cms", 403, nil},
		{"manager", r.manager, usage + "&project=atlas,cms", 403, nil},
		{"user", r.bob, usage, 200, []string{"atlas/bob", "cms/bob"}},
		{"user", r.bob, usage + "&user=bob", 200, []string{"atlas/bob", "cms/bob"}},
		{"user", r.bob, usage + "&user=carol", 403, nil},
		{"user", r.bob, usage + "&user=bob&user=carol", 403, nil},
		{"user", r.bob, usage + "&project=cms", 403, nil},
		{"user", r.carol, usage, 200, []string{"atlas/carol"}},
		{"no user claim", r.nouser, usage, 403, nil},
		{"no groups claim", r.nogroups, usage, 200, []string{"atlas/bob", "cms/bob"}},
		{"no groups claim", r.rootNoGroups, usage, 200, []string{}},
		{"no groups claim", r.rootNoGroups, usage + "&user=bob", 403, nil},
		{"anonymous", "", usage, 401, nil},

		{"admin", r.admin, "/api/v1/reports/monthly/2026-11", 200, everyone},
		{"admin", r.admin, "/api/v1/reports/monthly/2026-10", 200, []string{"cms/bob"}},
		{"manager", r.manager, "/api/v1/reports/monthly/2026-11", 200, []string{"atlas/bob", "atlas/carol"}},
		{"user", r.bob, "/api/v1/reports/monthly/2026-11", 200, []string{"atlas/bob", "cms/bob"}},
		{"user", r.carol, "/api/v1/reports/monthly/2026-10", 200, []string{}},
		{"no user claim", r.nouser, "/api/v1/reports/monthly/2026-11", 403, nil},
		{"anonymous", "", "/api/v1/reports/monthly/2026-11", 401, nil},

		{"admin", r.admin, idle, 200, []string{"atlas/bob", "atlas/carol"}},
		{"manager", r.manager, idle, 200, []string{"atlas/bob", "atlas/carol"}},
		{"manager", r.manager, idle + "&project=cms", 403, nil},
		{"user", r.bob, idle, 200, []string{"atlas/bob"}},
		{"user", r.bob, idle + "&user=carol", 403, nil},
		{"user", r.carol, idle, 200, []string{"atlas/carol"}},
		{"no user claim", r.nouser, idle, 403, nil},
		{"anonymous", "", idle, 401, nil},

		{"admin", r.admin, quota, 200, nil},
		{"manager", r.manager, quota, 200, nil},
		{"manager", r.manager, quota + "&project=cms", 403, nil},
		{"user", r.bob, quota, 403, nil},
		{"no groups claim", r.rootNoGroups, quota, 403, nil},
		{"anonymous", "", quota, 401, nil},

		{"admin", r.admin, "/api/v1/projects", 200, nil},
		{"manager", r.manager, "/api/v1/projects", 200, nil},
		{"user", r.bob, "/api/v1/projects", 200, nil},
		{"no user claim", r.nouser, "/api/v1/projects", 403, nil},
		{"anonymous", "", "/api/v1/projects", 401, nil},
	}
	for _, c := range cases {
		t.Run(c.role+" "+c.path, func(t *testing.T) {
			resp, b := e.get(t, c.token, c.path)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if c.status != 200 {
				p := problemOf(t, resp, b)
				if c.status == 403 && p.Type != problemBase+probForbidden.slug {
					t.Errorf("problem type %s", p.Type)
				}
				return
			}
			if c.groups != nil {
				_, rows := jsonRows(t, b)
				if got := groups(rows); !slices.Equal(got, c.groups) {
					t.Errorf("groups %v, want %v", got, c.groups)
				}
			}
		})
	}

	// Projects and quotas, by role.
	projects := func(token string) string {
		_, b := e.get(t, token, "/api/v1/projects")
		var doc struct{ Projects []Project }
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range doc.Projects {
			s := p.Name + " " + p.FirstMonth + ".." + p.LastMonth
			if p.Manager {
				s += " manager"
			}
			out = append(out, s)
		}
		return strings.Join(out, ", ")
	}
	for token, want := range map[string]string{
		r.admin:   formula + " 2026-11..2026-11 manager, atlas 2026-11..2026-11 manager, cms 2026-10..2026-11 manager",
		r.manager: "atlas 2026-11..2026-11 manager",
		r.bob:     "atlas 2026-11..2026-11, cms 2026-10..2026-11",
		r.carol:   "atlas 2026-11..2026-11",
	} {
		if got := projects(token); got != want {
			t.Errorf("projects %q, want %q", got, want)
		}
	}
	queues := func(token string) []string {
		_, b := e.get(t, token, quota)
		_, rows := jsonRows(t, b)
		var out []string
		for _, r := range rows {
			out = append(out, r["queue"].(string)+" "+r["resource"].(string))
		}
		return out
	}
	if got, want := queues(r.admin), []string{"atlas-cq nvidia.com/gpu", "atlas-cq nvidia.com/gpu.shared", "cms nvidia.com/gpu"}; !slices.Equal(got, want) {
		t.Errorf("admin queues %v, want %v", got, want)
	}
	if got, want := queues(r.manager), []string{"atlas-cq nvidia.com/gpu", "atlas-cq nvidia.com/gpu.shared"}; !slices.Equal(got, want) {
		t.Errorf("manager queues %v, want %v", got, want)
	}
}
