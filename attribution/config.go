package attribution

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ConfigError is one problem of a rules file, located by line.
type ConfigError struct {
	File  string
	Line  int
	Field string // "user[1].from"; "" for the file as a whole
	Msg   string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// ConfigErrors are every problem found in a rules file.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	if len(es) == 1 {
		return "invalid attribution rules: " + es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid attribution rules (%d problems):", len(es))
	for _, e := range es {
		b.WriteString("\n  " + e.Error())
	}
	return b.String()
}

// needsKey tells, for each known source, whether it reads a key.
var needsKey = map[string]bool{
	FromAnnotation:     true,
	FromLabel:          true,
	FromNamespaceLabel: true,
	FromServiceAccount: false,
	FromClusterQueue:   false,
	FromNamespace:      false,
}

const knownSources = "annotation, label, namespace_label, service_account, cluster_queue, namespace"

// LoadRules reads a rules file (see ParseRules).
func LoadRules(path string) (Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Rules{}, fmt.Errorf("read attribution rules: %w", err)
	}
	return ParseRules(path, data)
}

// ParseRules decodes and validates a rules file; name is used in error
// messages. The file is one YAML mapping with the lists "user" and
// "project", each an ordered list of sources ({from: annotation, key: …}).
// A list left out keeps its default (Default); a list present must hold at
// least one source. Every problem is reported with its line, as
// ConfigErrors.
func ParseRules(name string, data []byte) (Rules, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return Rules{}, ConfigErrors{{File: name, Msg: "empty rules file; leave --attribution-config unset for the default rules"}}
	case err != nil:
		return Rules{}, ConfigErrors{{File: name, Line: yamlErrorLine(err), Msg: yamlErrorMsg(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = yamlErrorLine(err)
		}
		return Rules{}, ConfigErrors{{File: name, Line: line, Msg: "more than one YAML document; a rules file is one document"}}
	}
	p := ruleParser{file: name}
	rules := p.document(&root)
	if len(p.errs) > 0 {
		return Rules{}, p.errs
	}
	return rules, nil
}

// Validate checks rules built in code: every source known, keys where
// needed, at least one source per list.
func (r Rules) Validate() error {
	p := ruleParser{file: "rules"}
	for _, l := range []struct {
		name string
		srcs []Source
	}{{"user", r.User}, {"project", r.Project}} {
		if len(l.srcs) == 0 {
			p.errorf(0, l.name, "no sources")
		}
		for i, s := range l.srcs {
			p.source(fmt.Sprintf("%s[%d]", l.name, i), 0, s, 0)
		}
	}
	if len(p.errs) > 0 {
		return p.errs
	}
	return nil
}

type ruleParser struct {
	file string
	errs ConfigErrors
}

func (p *ruleParser) errorf(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *ruleParser) document(root *yaml.Node) Rules {
	rules := Default()
	doc := root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			p.errorf(doc.Line, "", "empty rules file")
			return rules
		}
		doc = doc.Content[0]
	}
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		p.errorf(doc.Line, "", "empty rules file; leave --attribution-config unset for the default rules")
		return rules
	}
	if doc.Kind != yaml.MappingNode {
		p.errorf(doc.Line, "", "want a mapping with the lists user and project, found %s", kindName(doc))
		return rules
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if prev, dup := seen[k.Value]; dup {
			p.errorf(k.Line, k.Value, "set twice (first at line %d)", prev)
			continue
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "user":
			rules.User = p.list(k.Value, k, v)
		case "project":
			rules.Project = p.list(k.Value, k, v)
		default:
			p.errorf(k.Line, k.Value, "unknown field (known: user, project)")
		}
	}
	return rules
}

func (p *ruleParser) list(field string, key, v *yaml.Node) []Source {
	v = deref(v)
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, field, "want a list of sources, found %s", kindName(v))
		return nil
	}
	if len(v.Content) == 0 {
		p.errorf(key.Line, field, "no sources; leave the list out for the default rules")
		return nil
	}
	out := make([]Source, 0, len(v.Content))
	for i, item := range v.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if s, ok := p.item(f, item); ok {
			out = append(out, s)
		}
	}
	return out
}

func (p *ruleParser) item(field string, n *yaml.Node) (Source, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, field, "want a source mapping (from, key), found %s", kindName(n))
		return Source{}, false
	}
	var s Source
	fromLine, keyLine := 0, 0
	before := len(p.errs)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var dst *string
		var line *int
		switch k.Value {
		case "from":
			dst, line = &s.From, &fromLine
		case "key":
			dst, line = &s.Key, &keyLine
		default:
			p.errorf(k.Line, field+"."+k.Value, "unknown field (known: from, key)")
			continue
		}
		if *line != 0 {
			p.errorf(k.Line, field+"."+k.Value, "set twice (first at line %d)", *line)
			continue
		}
		*line = k.Line
		v = deref(v)
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			p.errorf(v.Line, field+"."+k.Value, "want a string, found %s", kindName(v))
			continue
		}
		*dst = v.Value
	}
	if len(p.errs) > before {
		return Source{}, false
	}
	p.source(field, n.Line, s, fromLine)
	if len(p.errs) > before {
		return Source{}, false
	}
	if keyLine != 0 && !needsKey[s.From] {
		// Reported as an error: a key on a source that ignores it is a
		// rule that does not do what its author meant.
		p.errorf(keyLine, field+".key", "from %q reads no key", s.From)
		return Source{}, false
	}
	return s, true
}

// source checks one source: a known kind, and a key when it needs one.
// line is the source's line; fromLine that of its "from" (0 when absent).
func (p *ruleParser) source(field string, line int, s Source, fromLine int) {
	if s.From == "" {
		p.errorf(line, field, `missing "from" (one of %s)`, knownSources)
		return
	}
	wants, known := needsKey[s.From]
	if !known {
		p.errorf(fromLine, field+".from", "unknown source %q (one of %s)", s.From, knownSources)
		return
	}
	if wants && strings.TrimSpace(s.Key) == "" {
		p.errorf(line, field, `from %q needs a "key"`, s.From)
	}
}

// deref follows an alias to its anchor's node.
func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "a document"
}

// yamlErrorLine finds the line a decoder error names ("yaml: line 3: …").
func yamlErrorLine(err error) int {
	var line int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		_, _ = fmt.Sscanf(msg[i:], "line %d", &line)
	}
	return line
}

// yamlErrorMsg strips the decoder's "yaml: line N: " prefix, as the
// ConfigError carries the line.
func yamlErrorMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
	}
	return msg
}
