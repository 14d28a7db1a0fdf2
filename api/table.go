package api

import (
	"mime"
	"net/http"

	"github.com/gpuledger/gpuledger/internal/tabular"
)

// table streams one tabular answer. The status and headers go out with
// the first row (or at the end, for an answer without rows), so that an
// error before any row is still a proper problem document; rows then
// reach the client as the tabular writer's buffer fills, while the
// database is still returning the next ones.
type table struct {
	s        *Server
	w        http.ResponseWriter
	r        *http.Request
	format   string
	filename string // without extension; CSV answers are attachments
	columns  []string
	meta     []tabular.Field
	header   http.Header // extra response headers

	tw   tabular.Writer
	rows int
}

// start sends the headers and opens the tabular writer.
func (t *table) start() error {
	h := t.w.Header()
	for k, vs := range t.header {
		h[k] = vs
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if t.format == tabular.FormatCSV {
		h.Set("Content-Type", "text/csv; charset=utf-8; header=present")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": t.filename + ".csv"}))
	} else {
		h.Set("Content-Type", "application/json")
	}
	t.w.WriteHeader(http.StatusOK)
	tw, err := tabular.New(t.format, t.w, t.columns, t.meta...)
	if err != nil {
		return err
	}
	t.tw = tw
	return nil
}

// write writes one row.
func (t *table) write(cells []tabular.Cell) error {
	if t.tw == nil {
		if err := t.start(); err != nil {
			return err
		}
	}
	t.rows++
	return t.tw.Write(cells)
}

// finish ends the answer after the query returned err. Before any row,
// an error is answered as a problem. After rows were sent, the status is
// out and a truncated table must not pass for a whole one: the response
// is aborted (the client sees the connection or stream reset, not a
// clean end) — http.ErrAbortHandler is net/http's way to do that.
func (t *table) finish(err error) {
	if t.s.opts.afterQuery != nil {
		t.s.opts.afterQuery()
	}
	if err != nil && t.tw == nil {
		writeProblem(t.w, t.r, t.s.errorProblem(t.r.Context(), err))
		return
	}
	if err == nil && t.tw == nil {
		err = t.start()
	}
	if err == nil {
		err = t.tw.Close()
	}
	if err != nil {
		t.s.logRequestError(t.r, t.rows, err)
		panic(http.ErrAbortHandler)
	}
}
