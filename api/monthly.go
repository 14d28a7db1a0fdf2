package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/tabular"
)

// Statuses of a monthly report.
const (
	StatusClosed      = "closed"
	StatusProvisional = "provisional"
)

// StatusHeader carries a monthly report's status in both formats.
const StatusHeader = "Gpuledger-Report-Status"

// monthlyResource is GET /api/v1/reports/monthly/{month}: a UTC month by
// project and user, "closed" once the month is closed in the ledger (for
// every cluster reported), else "provisional".
type monthlyResource struct{ s *Server }

// Routes registers the resource.
func (m monthlyResource) Routes(r chi.Router) { r.Get("/reports/monthly/{month}", m.get) }

func (m monthlyResource) get(w http.ResponseWriter, r *http.Request) {
	q, p := newQuery(r, "cluster", "format")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	name := chi.URLParam(r, "month")
	month, err := time.Parse("2006-01", name)
	if err != nil || len(name) != len("2006-01") {
		writeProblem(w, r, badParam(probBadTime, "month", "month %q: want YYYY-MM, such as 2026-10", name))
		return
	}
	cluster, p := q.one("cluster")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	format, p := q.format(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	pr := principal(r)
	if err := pr.CheckUsage(nil, nil); err != nil {
		writeProblem(w, r, m.s.errorProblem(r.Context(), err))
		return
	}
	closed, err := m.s.opts.Ledger.MonthClosed(r.Context(), cluster, month)
	if err != nil {
		writeProblem(w, r, m.s.errorProblem(r.Context(), err))
		return
	}
	status := StatusProvisional
	if closed {
		status = StatusClosed
	}
	uq := ledger.UsageQuery{ReportQuery: ledger.ReportQuery{Cluster: cluster, From: month, To: month.AddDate(0, 1, 0),
		GroupBy: []string{ledger.KeyProject, ledger.KeyUser}}, Visible: visibility(pr)}
	t := &table{s: m.s, w: w, r: r, format: format, columns: ledger.UsageColumns("", uq.GroupBy, false),
		filename: "gpuledger-" + name + "-" + status,
		header:   http.Header{StatusHeader: {status}},
		meta: []tabular.Field{
			{Name: "month", Value: name},
			{Name: "status", Value: status},
			{Name: "window", Value: window(uq.From, uq.To)},
			{Name: "cluster", Value: cluster},
			{Name: "group_by", Value: uq.GroupBy},
			{Name: "scope", Value: scope(pr)},
		}}
	err = m.s.opts.Ledger.Usage(r.Context(), uq, func(row ledger.UsageRow) error { return t.write(row.Cells("", false)) })
	t.finish(err)
}
