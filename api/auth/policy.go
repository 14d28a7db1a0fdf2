package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrForbidden is a request for rows its caller may not see.
var ErrForbidden = errors.New("forbidden")

// Policy maps identities to what they may see.
type Policy struct {
	// AdminGroup's members see everything ("" : nobody is administrator).
	AdminGroup string
	// Managers maps a project (as the ledger names it) to the groups
	// whose members manage it and see all its rows.
	Managers map[string][]string
}

// Principal is a caller and what it may see.
type Principal struct {
	// User is matched to the ledger's user key: the caller's own rows.
	User    string
	Subject string
	Groups  []string
	// Admin sees every row.
	Admin bool
	// Manages are the projects whose rows the caller sees, sorted.
	Manages []string
	// Unauthenticated marks the development mode without authentication
	// (an administrator nobody logged in as).
	Unauthenticated bool
}

// Principal returns what the holder of id may see.
func (p *Policy) Principal(id Identity) Principal {
	pr := Principal{User: id.User, Subject: id.Subject, Groups: id.Groups}
	has := func(g string) bool { return slices.Contains(id.Groups, NormalizeGroup(g)) }
	pr.Admin = p.AdminGroup != "" && has(p.AdminGroup)
	for project, groups := range p.Managers {
		if slices.ContainsFunc(groups, has) {
			pr.Manages = append(pr.Manages, project)
		}
	}
	sort.Strings(pr.Manages)
	return pr
}

// Unauthenticated is the principal of the --no-auth development mode: it
// sees everything.
func Unauthenticated() Principal {
	return Principal{User: "", Subject: "no-auth", Admin: true, Unauthenticated: true}
}

// ManagesProject reports whether p sees every row of project.
func (p Principal) ManagesProject(project string) bool {
	return p.Admin || slices.Contains(p.Manages, project)
}

// CheckUsage checks the filters of a usage request: a project filter
// must name projects p manages; a user filter must name p itself unless p
// manages a project (the rows are then those of its projects). Errors
// wrap ErrForbidden. What p sees is enforced apart, by the SQL filters of
// its visibility: this check only turns requests that could only ever
// return rows p may not see into a clear 403.
func (p Principal) CheckUsage(projects, users []string) error {
	if p.Admin {
		return nil
	}
	if p.User == "" && len(p.Manages) == 0 {
		return fmt.Errorf("%w: the token carries no user claim and its groups manage no project, so no rows are yours", ErrForbidden)
	}
	for _, pr := range projects {
		if !p.ManagesProject(pr) {
			return fmt.Errorf("%w: you do not manage project %q (you manage: %s)", ErrForbidden, pr, listOrNone(p.Manages))
		}
	}
	for _, u := range users {
		if u != p.User && len(p.Manages) == 0 {
			return fmt.Errorf("%w: you may see your own usage only (user %q), not user %q", ErrForbidden, p.User, u)
		}
	}
	return nil
}

// CheckQuota checks a quota request: quotas are the administrators' and
// the project managers' (of their projects).
func (p Principal) CheckQuota(projects []string) error {
	if p.Admin {
		return nil
	}
	if len(p.Manages) == 0 {
		return fmt.Errorf("%w: quotas are visible to administrators and project managers", ErrForbidden)
	}
	return p.CheckUsage(projects, nil)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// LoadManagers reads a YAML mapping of project to the group, or list of
// groups, whose members manage it:
//
//	cms: cms/managers
//	atlas: [atlas-leads, /atlas/admins]
func LoadManagers(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("project managers: %w", err)
	}
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("project managers %s: want a mapping of project to group(s): %w", path, err)
	}
	out := make(map[string][]string, len(raw))
	for project, node := range raw {
		if strings.TrimSpace(project) == "" {
			return nil, fmt.Errorf("project managers %s: an empty project name", path)
		}
		var groups []string
		switch node.Kind {
		case yaml.ScalarNode:
			groups = []string{node.Value}
		case yaml.SequenceNode:
			if err := node.Decode(&groups); err != nil {
				return nil, fmt.Errorf("project managers %s: project %q: %w", path, project, err)
			}
		default:
			return nil, fmt.Errorf("project managers %s: project %q: want a group or a list of groups", path, project)
		}
		for i, g := range groups {
			if groups[i] = NormalizeGroup(g); groups[i] == "" {
				return nil, fmt.Errorf("project managers %s: project %q: an empty group name", path, project)
			}
		}
		if len(groups) == 0 {
			return nil, fmt.Errorf("project managers %s: project %q has no group", path, project)
		}
		out[project] = groups
	}
	return out, nil
}

// principalKey is the context key of the request's principal.
type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, and false when none
// (a request that did not go through authentication).
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
