package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/tabular"
)

// idleResource is GET /api/v1/idle: who holds idle GPU time — allocated
// GPUs whose sampled activity was below the idle threshold — by project,
// user and namespace, most first, over a range or, without one, over the
// latest hour in the ledger ("now").
type idleResource struct{ s *Server }

// Routes registers the resource.
func (i idleResource) Routes(r chi.Router) { r.Get("/idle", i.get) }

// Idle columns after the keys.
var idleColumns = []string{"idle_gpu_hours", "allocated_gpu_hours", "idle_ratio",
	"idle_milli_gpu_seconds", "allocated_milli_gpu_seconds"}

func (i idleResource) get(w http.ResponseWriter, r *http.Request) {
	q, p := newQuery(r, "cluster", "from", "to", "project", "user", "limit", "format")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	uq := ledger.UsageQuery{ReportQuery: ledger.ReportQuery{GroupBy: []string{ledger.KeyProject, ledger.KeyUser, ledger.KeyNamespace}}}
	var ranged bool
	if uq.From, uq.To, ranged, p = q.window(true, i.s.opts.MaxRange); p != nil {
		writeProblem(w, r, p)
		return
	}
	var limit int
	var format string
	for _, step := range []func() *Problem{
		func() (p *Problem) { uq.Cluster, p = q.one("cluster"); return },
		func() (p *Problem) { uq.Projects, p = q.list("project"); return },
		func() (p *Problem) { uq.Users, p = q.list("user"); return },
		func() (p *Problem) { limit, p = q.limit(DefaultIdleLimit, MaxIdleLimit); return },
		func() (p *Problem) { format, p = q.format(r); return },
	} {
		if p := step(); p != nil {
			writeProblem(w, r, p)
			return
		}
	}
	pr := principal(r)
	if err := pr.CheckUsage(uq.Projects, uq.Users); err != nil {
		writeProblem(w, r, i.s.errorProblem(r.Context(), err))
		return
	}
	uq.Visible = visibility(pr)
	if !ranged {
		h, ok, err := i.s.opts.Ledger.LatestHour(r.Context(), uq.Cluster)
		if err != nil {
			writeProblem(w, r, i.s.errorProblem(r.Context(), err))
			return
		}
		if !ok {
			// An empty ledger: nobody holds anything.
			t := i.table(w, r, format, uq, nil, false)
			t.finish(nil)
			return
		}
		uq.From, uq.To = h, h.Add(time.Hour)
	}
	t := i.table(w, r, format, uq, window(uq.From, uq.To), !ranged)
	err := i.s.opts.Ledger.Idle(r.Context(), uq, limit, func(row ledger.ReportRow) error {
		cells := make([]tabular.Cell, 0, len(row.Keys)+len(idleColumns))
		for _, k := range row.Keys {
			cells = append(cells, tabular.String(k))
		}
		cells = append(cells,
			tabular.Ratio(row.IdleMilliGPUSeconds, milliGPUSecondsPerHour, 6),
			tabular.Ratio(row.AllocatedMilliGPUSeconds, milliGPUSecondsPerHour, 6),
			tabular.Ratio(row.IdleMilliGPUSeconds, row.AllocatedMilliGPUSeconds, 6),
			tabular.Int(row.IdleMilliGPUSeconds), tabular.Int(row.AllocatedMilliGPUSeconds))
		return t.write(cells)
	})
	t.finish(err)
}

// milliGPUSecondsPerHour converts the ledger's units to GPU-hours.
const milliGPUSecondsPerHour = 3_600_000

func (i idleResource) table(w http.ResponseWriter, r *http.Request, format string, uq ledger.UsageQuery,
	win map[string]string, latest bool) *table {
	name := "gpuledger-idle"
	if win != nil {
		name += "-" + stamp(uq.From) + "-" + stamp(uq.To)
	}
	return &table{s: i.s, w: w, r: r, format: format, filename: name,
		columns: append(append([]string{}, uq.GroupBy...), idleColumns...),
		meta: []tabular.Field{
			{Name: "window", Value: win},
			{Name: "latest_hour", Value: latest},
			{Name: "cluster", Value: uq.Cluster},
			{Name: "scope", Value: scope(principal(r))},
		}}
}
