// Package alerts holds gpuledger's Prometheus alert rules: the rule file
// gpuledger-rules.yaml, embedded here, its decoding into groups and rules,
// and its rendering as a Prometheus Operator PrometheusRule
// (prometheusrule.yaml, regenerated with go generate). The rules themselves
// are documented in docs/alerts.md and docs/runbooks.md; their promtool unit
// tests are under tests/.
package alerts

//go:generate go run gen.go

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// RuleFileName is the rule file of this directory, as embedded.
const RuleFileName = "gpuledger-rules.yaml"

// RunbookBase is where every alert's runbook_url points, followed by
// "#<anchor>": docs/runbooks.md of the project's main branch.
const RunbookBase = "https://github.com/gpuledger/gpuledger/blob/main/docs/runbooks.md"

//go:embed gpuledger-rules.yaml
var ruleFile []byte

// RuleFileYAML returns the embedded rule file as written, comments included.
func RuleFileYAML() []byte { return bytes.Clone(ruleFile) }

// RuleFile is a Prometheus rule file: groups of alerting and recording
// rules.
type RuleFile struct {
	Groups []Group `yaml:"groups"`
}

// Group is a rule group, evaluated at one interval.
type Group struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Limit    int    `yaml:"limit,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is an alerting rule (Alert set) or a recording rule (Record set).
type Rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Load decodes the embedded rule file.
func Load() (*RuleFile, error) {
	f, err := Parse(ruleFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RuleFileName, err)
	}
	return f, nil
}

// Parse decodes a rule file. Unknown fields are errors, and so are a group
// without a name or rules, two groups or two alerts of one name, and a rule
// that is not exactly one of an alert and a record or has no expression.
// The PromQL is not checked here: promtool check rules does that.
func Parse(data []byte) (*RuleFile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f RuleFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty rule file")
		}
		return nil, fmt.Errorf("decode rule file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode rule file: more than one YAML document")
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *RuleFile) validate() error {
	if len(f.Groups) == 0 {
		return errors.New("no rule groups")
	}
	groups := map[string]bool{}
	alerts := map[string]string{}
	var errs []error
	for i, g := range f.Groups {
		switch {
		case g.Name == "":
			errs = append(errs, fmt.Errorf("groups[%d]: no name", i))
		case groups[g.Name]:
			errs = append(errs, fmt.Errorf("groups[%d]: group %q given twice", i, g.Name))
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			errs = append(errs, fmt.Errorf("group %q: no rules", g.Name))
		}
		for j, r := range g.Rules {
			if err := r.validate(); err != nil {
				errs = append(errs, fmt.Errorf("group %q: rules[%d]: %w", g.Name, j, err))
				continue
			}
			if r.Alert == "" {
				continue
			}
			if prev, ok := alerts[r.Alert]; ok {
				errs = append(errs, fmt.Errorf("group %q: rules[%d]: alert %s already defined in group %q", g.Name, j, r.Alert, prev))
			}
			alerts[r.Alert] = g.Name
		}
	}
	return errors.Join(errs...)
}

func (r *Rule) validate() error {
	switch {
	case r.Alert == "" && r.Record == "":
		return errors.New("neither alert nor record")
	case r.Alert != "" && r.Record != "":
		return fmt.Errorf("both alert %s and record %s", r.Alert, r.Record)
	case r.Expr == "":
		return errors.New("no expr")
	case r.Record != "" && (r.For != "" || len(r.Annotations) > 0):
		return fmt.Errorf("record %s: for and annotations belong to alerts", r.Record)
	}
	return nil
}

// Alert is an alerting rule and the group that holds it.
type Alert struct {
	Group string
	Rule
}

// Alerts lists the alerting rules of f in file order.
func (f *RuleFile) Alerts() []Alert {
	var out []Alert
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, Alert{Group: g.Name, Rule: r})
			}
		}
	}
	return out
}

// Marshal encodes f as a rule file Prometheus and promtool load.
func (f *RuleFile) Marshal() ([]byte, error) {
	return encode(f)
}

// prometheusRule is the Prometheus Operator's PrometheusRule resource
// (monitoring.coreos.com/v1), reduced to what gpuledger fills in.
type prometheusRule struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
	Spec       RuleFile `yaml:"spec"`
}

type metadata struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels,omitempty"`
}

// GeneratedHeader opens prometheusrule.yaml.
const GeneratedHeader = "# Code generated by go generate ./alerts (alerts/gen.go) from alerts/gpuledger-rules.yaml. DO NOT EDIT.\n"

// PrometheusRule renders f as a PrometheusRule named gpuledger, labelled
// app.kubernetes.io/name=gpuledger and app.kubernetes.io/component=alerts,
// without a namespace (kubectl apply -n chooses it). A Prometheus whose
// ruleSelector wants other labels needs them added at deployment.
func PrometheusRule(f *RuleFile) ([]byte, error) {
	pr := prometheusRule{
		APIVersion: "monitoring.coreos.com/v1",
		Kind:       "PrometheusRule",
		Metadata: metadata{
			Name:   "gpuledger",
			Labels: map[string]string{"app.kubernetes.io/name": "gpuledger", "app.kubernetes.io/component": "alerts"},
		},
		Spec: *f,
	}
	body, err := encode(pr)
	if err != nil {
		return nil, err
	}
	return append([]byte(GeneratedHeader), body...), nil
}

// ParsePrometheusRule decodes a PrometheusRule rendered by PrometheusRule
// and returns its rule groups.
func ParsePrometheusRule(data []byte) (*RuleFile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var pr prometheusRule
	if err := dec.Decode(&pr); err != nil {
		return nil, fmt.Errorf("decode PrometheusRule: %w", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("decode PrometheusRule: got %s %s", pr.APIVersion, pr.Kind)
	}
	if err := pr.Spec.validate(); err != nil {
		return nil, fmt.Errorf("PrometheusRule %s: %w", pr.Metadata.Name, err)
	}
	return &pr.Spec, nil
}

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}
