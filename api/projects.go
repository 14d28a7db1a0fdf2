package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
)

// projectsResource is GET /api/v1/projects: the projects the caller sees
// rows of, and those it manages.
type projectsResource struct{ s *Server }

// Routes registers the resource.
func (p projectsResource) Routes(r chi.Router) { r.Get("/projects", p.get) }

// Project is one entry of GET /api/v1/projects.
type Project struct {
	Name string `json:"name"`
	// FirstMonth and LastMonth (YYYY-MM, UTC) bound the months with rows
	// the caller sees; absent for a managed project without rows.
	FirstMonth string `json:"first_month,omitempty"`
	LastMonth  string `json:"last_month,omitempty"`
	// Manager is true when the caller sees every row of the project.
	Manager bool `json:"manager"`
}

func (p projectsResource) get(w http.ResponseWriter, r *http.Request) {
	q, prob := newQuery(r, "cluster")
	if prob != nil {
		writeProblem(w, r, prob)
		return
	}
	cluster, prob := q.one("cluster")
	if prob != nil {
		writeProblem(w, r, prob)
		return
	}
	pr := principal(r)
	if err := pr.CheckUsage(nil, nil); err != nil {
		writeProblem(w, r, p.s.errorProblem(r.Context(), err))
		return
	}
	list, err := p.s.opts.Ledger.Projects(r.Context(), cluster, visibility(pr))
	if err != nil {
		writeProblem(w, r, p.s.errorProblem(r.Context(), err))
		return
	}
	out := make([]Project, 0, len(list)+len(pr.Manages))
	for _, x := range list {
		out = append(out, Project{Name: x.Name, FirstMonth: x.FirstMonth.Format("2006-01"),
			LastMonth: x.LastMonth.Format("2006-01"), Manager: pr.ManagesProject(x.Name)})
	}
	for _, m := range pr.Manages {
		if !slices.ContainsFunc(out, func(x Project) bool { return x.Name == m }) {
			out = append(out, Project{Name: m, Manager: true})
		}
	}
	slices.SortFunc(out, func(a, b Project) int { return strings.Compare(a.Name, b.Name) })
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"projects": out, "scope": scope(pr)})
}
