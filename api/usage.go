package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/api/auth"
	"github.com/gpuledger/gpuledger/internal/tabular"
)

// usageResource is GET /api/v1/usage: the ledger over a range, grouped,
// filtered, optionally by hour, day or month.
type usageResource struct{ s *Server }

// Routes registers the resource.
func (u usageResource) Routes(r chi.Router) { r.Get("/usage", u.get) }

func (u usageResource) get(w http.ResponseWriter, r *http.Request) {
	q, p := newQuery(r, "cluster", "from", "to", "group_by", "project", "user", "resource", "granularity", "format")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	uq, format, p := u.parse(r, q)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	pr := principal(r)
	if err := pr.CheckUsage(uq.Projects, uq.Users); err != nil {
		writeProblem(w, r, u.s.errorProblem(r.Context(), err))
		return
	}
	uq.Visible = visibility(pr)
	t := &table{s: u.s, w: w, r: r, format: format, columns: ledger.UsageColumns(uq.Granularity, uq.GroupBy, false),
		filename: "gpuledger-usage-" + stamp(uq.From) + "-" + stamp(uq.To),
		meta: []tabular.Field{
			{Name: "window", Value: window(uq.From, uq.To)},
			{Name: "cluster", Value: uq.Cluster},
			{Name: "group_by", Value: nonNil(uq.GroupBy)},
			{Name: "granularity", Value: uq.Granularity},
			{Name: "filters", Value: map[string][]string{
				"project": nonNil(uq.Projects), "user": nonNil(uq.Users), "resource": nonNil(uq.Resources)}},
			{Name: "scope", Value: scope(pr)},
		}}
	err := u.s.opts.Ledger.Usage(r.Context(), uq, func(row ledger.UsageRow) error {
		return t.write(row.Cells(uq.Granularity, false))
	})
	t.finish(err)
}

// parse reads the usage query's parameters.
func (u usageResource) parse(r *http.Request, q query) (ledger.UsageQuery, string, *Problem) {
	var uq ledger.UsageQuery
	var p *Problem
	if uq.Granularity, p = q.granularity(); p != nil {
		return uq, "", p
	}
	maxRange := u.s.opts.MaxRange
	if uq.Granularity == ledger.GranularityHour {
		maxRange = min(maxRange, u.s.opts.MaxHourlyRange)
	}
	if uq.From, uq.To, _, p = q.window(false, maxRange); p != nil {
		return uq, "", p
	}
	if uq.GroupBy, p = q.groupBy([]string{ledger.KeyProject}); p != nil {
		return uq, "", p
	}
	if uq.Cluster, p = q.one("cluster"); p != nil {
		return uq, "", p
	}
	if uq.Projects, p = q.list("project"); p != nil {
		return uq, "", p
	}
	if uq.Users, p = q.list("user"); p != nil {
		return uq, "", p
	}
	if uq.Resources, p = q.resources(); p != nil {
		return uq, "", p
	}
	format, p := q.format(r)
	return uq, format, p
}

// visibility is what p sees, as the ledger's SQL filter.
func visibility(p auth.Principal) ledger.Visibility {
	return ledger.Visibility{All: p.Admin, Projects: p.Manages, User: p.User}
}

// scope describes what p sees, for the answer's metadata.
func scope(p auth.Principal) map[string]any {
	return map[string]any{"all": p.Admin, "projects": nonNil(p.Manages), "user": p.User}
}

// window is a range as the answers' metadata write it.
func window(from, to time.Time) map[string]string {
	return map[string]string{"from": from.UTC().Format(time.RFC3339), "to": to.UTC().Format(time.RFC3339)}
}

// stamp is an hour in a file name: 20261102T08Z.
func stamp(t time.Time) string { return t.UTC().Format("20060102T15Z") }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
