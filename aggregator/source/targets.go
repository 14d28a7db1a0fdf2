package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Target is one exporter to scrape.
type Target struct {
	// Name is what the scrapes of this target are called
	// (observe.Scrape.Target): the node name when known, else the address.
	// It must stay the same from one scrape to the next.
	Name string
	// URL is the exporter's metrics endpoint.
	URL string
}

// Discoverer tells which exporters to scrape. It is called before every
// round of scrapes, so a list that changes (a file_sd file rewritten, the
// endpoints of a Kubernetes Service) is followed. StaticTargets, FileSD and
// KubernetesEndpoints are the discoverers there are.
type Discoverer interface {
	Targets(ctx context.Context) ([]Target, error)
}

// StaticTargets is a fixed list of targets.
type StaticTargets []Target

// Targets returns the list.
func (s StaticTargets) Targets(context.Context) ([]Target, error) { return s, nil }

// ErrBadTarget marks a target that cannot be scraped as written.
var ErrBadTarget = errors.New("bad target")

// ParseTargets reads a comma-separated list of targets: host:port (scraped
// at http://host:port/metrics) or full http(s) URLs, each optionally
// preceded by a name and "=" (gpu-01=10.0.0.7:9835). A target without a
// name is named by its address. Duplicate names are an error.
func ParseTargets(list string) (StaticTargets, error) {
	var out StaticTargets
	seen := map[string]bool{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name := ""
		// A name holds neither ':' nor '/', which tells it from an
		// address or a URL (whose query may hold an '=').
		if n, addr, ok := strings.Cut(item, "="); ok && !strings.ContainsAny(n, ":/") {
			if n == "" {
				return nil, fmt.Errorf("%w: %q: empty name before '='", ErrBadTarget, item)
			}
			name, item = n, addr
		}
		t, err := targetOf(item, name, "", "")
		if err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: %q listed twice", ErrBadTarget, item)
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no targets in %q", ErrBadTarget, list)
	}
	return out, nil
}

// targetOf builds a target from an address (host:port or URL), an optional
// name, and the scheme and path a file_sd group may set.
func targetOf(addr, name, scheme, path string) (Target, error) {
	var u *url.URL
	if strings.Contains(addr, "://") {
		var err error
		u, err = url.Parse(addr)
		if err != nil {
			return Target{}, fmt.Errorf("%w: %q: %w", ErrBadTarget, addr, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return Target{}, fmt.Errorf("%w: %q: scheme must be http or https", ErrBadTarget, addr)
		}
		if u.Host == "" {
			return Target{}, fmt.Errorf("%w: %q: no host", ErrBadTarget, addr)
		}
		if u.Path == "" {
			u.Path = "/metrics"
		}
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			return Target{}, fmt.Errorf("%w: %q: want host:port or an http(s) URL", ErrBadTarget, addr)
		}
		if scheme == "" {
			scheme = "http"
		}
		if scheme != "http" && scheme != "https" {
			return Target{}, fmt.Errorf("%w: %q: scheme %q must be http or https", ErrBadTarget, addr, scheme)
		}
		if path == "" {
			path = "/metrics"
		}
		u = &url.URL{Scheme: scheme, Host: addr, Path: path}
	}
	if name == "" {
		name = u.Host
	}
	return Target{Name: name, URL: u.String()}, nil
}

// FileSD reads targets from a Prometheus file_sd file (JSON, or YAML when
// the name ends in .yml or .yaml): a list of groups
// {"targets": ["host:port", …], "labels": {…}}. A group's "node" label names
// its targets (give one target per group then); without it a target is
// named by its address. The labels __scheme__ and __metrics_path__ are
// honoured. The file is read again at every call, so rewriting it changes
// the targets of the next round.
type FileSD struct {
	Path string
}

type sdGroup struct {
	Targets []string          `json:"targets" yaml:"targets"`
	Labels  map[string]string `json:"labels" yaml:"labels"`
}

// Targets reads the file.
func (f FileSD) Targets(context.Context) ([]Target, error) {
	raw, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("file_sd: %w", err)
	}
	return parseFileSD(f.Path, raw)
}

func parseFileSD(path string, raw []byte) ([]Target, error) {
	var groups []sdGroup
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yml", ".yaml":
		if err := yaml.Unmarshal(raw, &groups); err != nil {
			return nil, fmt.Errorf("file_sd %s: %w", path, err)
		}
	default:
		if err := json.Unmarshal(raw, &groups); err != nil {
			return nil, fmt.Errorf("file_sd %s: %w", path, err)
		}
	}
	var out []Target
	seen := map[string]bool{}
	for i, g := range groups {
		name := g.Labels["node"]
		if name != "" && len(g.Targets) > 1 {
			return nil, fmt.Errorf("file_sd %s: group %d: node label %q on %d targets; give each node its own group", path, i, name, len(g.Targets))
		}
		for _, addr := range g.Targets {
			t, err := targetOf(addr, name, g.Labels["__scheme__"], g.Labels["__metrics_path__"])
			if err != nil {
				return nil, fmt.Errorf("file_sd %s: group %d: %w", path, i, err)
			}
			if seen[t.Name] {
				return nil, fmt.Errorf("file_sd %s: group %d: %w: %q listed twice", path, i, ErrBadTarget, t.Name)
			}
			seen[t.Name] = true
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Merged discovers the targets of several discoverers, each named for
// what it discovers (e.g. a Service): a target is named "<name>/<its
// name>", so that two exporters on one node — a node exporter and the
// cluster-mode exporter — are two targets, whose allocations the
// reconstruction never confuses. Targets are sorted by name.
type Merged struct {
	Names       []string
	Discoverers []Discoverer
}

// Targets lists every discoverer's targets; any error fails the whole
// list, so that no exporter looks gone because another list failed.
func (m Merged) Targets(ctx context.Context) ([]Target, error) {
	var out []Target
	for i, d := range m.Discoverers {
		ts, err := d.Targets(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Names[i], err)
		}
		for _, t := range ts {
			t.Name = m.Names[i] + "/" + t.Name
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
