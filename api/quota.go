package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/tabular"
)

// quotaResource is GET /api/v1/quota: the Kueue ClusterQueues' nominal
// quotas over a range against what their projects held of each resource
// (ledger.Store.QuotaUsage documents the join). Resources the ledger does
// not account (cpu, memory) are left out.
type quotaResource struct{ s *Server }

// Routes registers the resource.
func (qr quotaResource) Routes(r chi.Router) { r.Get("/quota", qr.get) }

// QuotaColumns are the columns of GET /api/v1/quota.
var QuotaColumns = []string{"cluster", "queue", "project", "resource", "nominal_quota",
	"quota_resource_hours", "used_resource_hours", "allocated_gpu_hours", "used_ratio",
	"quota_milli_resource_seconds", "used_resource_seconds", "allocated_milli_gpu_seconds"}

func (qr quotaResource) get(w http.ResponseWriter, r *http.Request) {
	q, p := newQuery(r, "cluster", "from", "to", "project", "format")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var qq ledger.QuotaQuery
	if qq.From, qq.To, _, p = q.window(false, qr.s.opts.MaxRange); p != nil {
		writeProblem(w, r, p)
		return
	}
	var format string
	for _, step := range []func() *Problem{
		func() (p *Problem) { qq.Cluster, p = q.one("cluster"); return },
		func() (p *Problem) { qq.Projects, p = q.list("project"); return },
		func() (p *Problem) { format, p = q.format(r); return },
	} {
		if p := step(); p != nil {
			writeProblem(w, r, p)
			return
		}
	}
	pr := principal(r)
	if err := pr.CheckQuota(qq.Projects); err != nil {
		writeProblem(w, r, qr.s.errorProblem(r.Context(), err))
		return
	}
	qq.Visible = visibility(pr)
	rows, err := qr.s.opts.Ledger.QuotaUsage(r.Context(), qq)
	t := &table{s: qr.s, w: w, r: r, format: format, columns: QuotaColumns,
		filename: "gpuledger-quota-" + stamp(qq.From) + "-" + stamp(qq.To),
		meta: []tabular.Field{
			{Name: "window", Value: window(qq.From, qq.To)},
			{Name: "cluster", Value: qq.Cluster},
			{Name: "scope", Value: scope(pr)},
		}}
	if err == nil {
		for _, x := range rows {
			if !x.Accounted {
				continue
			}
			if err = t.write(quotaCells(x)); err != nil {
				break
			}
		}
	}
	t.finish(err)
}

func quotaCells(x ledger.QuotaRow) []tabular.Cell {
	return []tabular.Cell{
		tabular.String(x.Cluster), tabular.String(x.Queue), tabular.String(x.Project), tabular.String(x.Resource),
		tabular.Ratio(x.NominalMilli, 1000, 3),
		tabular.Ratio(x.QuotaMilliSeconds, milliGPUSecondsPerHour, 6),
		tabular.Ratio(x.UsedDeviceSeconds, 3600, 6),
		tabular.Ratio(x.AllocatedMilliGPUSeconds, milliGPUSecondsPerHour, 6),
		tabular.Ratio(x.UsedDeviceSeconds*1000, x.QuotaMilliSeconds, 6),
		tabular.Int(x.QuotaMilliSeconds), tabular.Int(x.UsedDeviceSeconds), tabular.Int(x.AllocatedMilliGPUSeconds),
	}
}
