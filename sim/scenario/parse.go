package scenario

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// MaxErrors is how many problems a ValidationError lists in its message.
const MaxErrors = 20

// FieldError is one problem in a scenario file, located by line and by the
// path of the field ("pods[3].devices[0].id").
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
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

// ValidationError collects every problem found in a scenario.
type ValidationError struct {
	Errs []*FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid scenario (%d problems):", len(e.Errs))
	for i, fe := range e.Errs {
		if i == MaxErrors {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Errs)-MaxErrors)
			break
		}
		b.WriteString("\n  " + fe.Error())
	}
	return b.String()
}

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a scenario; name is used in error messages.
func Parse(name string, data []byte) (*Scenario, error) {
	// The node tree only serves to locate errors, so it is built on the
	// first one: a valid month-long scenario is decoded once.
	var root *yaml.Node
	tree := func() *yaml.Node {
		if root == nil {
			root = &yaml.Node{}
			if err := yaml.Unmarshal(data, root); err != nil {
				root = &yaml.Node{}
			}
		}
		return root
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Scenario
	switch err := dec.Decode(&s); {
	case errors.Is(err, io.EOF):
		return nil, &ValidationError{Errs: []*FieldError{{File: name, Msg: "empty scenario"}}}
	case err != nil:
		return nil, &ValidationError{Errs: yamlErrors(name, tree(), err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &ValidationError{Errs: []*FieldError{{File: name, Line: extra.Line,
			Msg: "more than one YAML document; a scenario is one document"}}}
	case !errors.Is(err, io.EOF):
		// A later document that does not even parse is still a second document.
		fe := yamlErrors(name, nil, err)
		fe[0].Msg = "more than one YAML document; a scenario is one document (and the next one is malformed: " + fe[0].Msg + ")"
		return nil, &ValidationError{Errs: fe[:1]}
	}
	v := validator{file: name, root: tree}
	v.scenario(&s)
	if len(v.errs) > 0 {
		return nil, &ValidationError{Errs: v.errs}
	}
	return &s, nil
}

// Write encodes a scenario as YAML.
func Write(w io.Writer, s *Scenario) error {
	// The YAML encoder holds a whole document in memory until it ends, so
	// the pods — nearly all of a month-long scenario — are encoded one at a
	// time and streamed after the rest.
	head := *s
	head.Pods, head.Faults = nil, nil
	var root yaml.Node
	if err := root.Encode(&head); err != nil {
		return fmt.Errorf("encode scenario: %w", err)
	}
	// Drop the empty pods list; pods (and faults) follow.
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "pods" {
			root.Content = append(root.Content[:i], root.Content[i+2:]...)
			break
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := encodeYAML(bw, &root, ""); err != nil {
		return err
	}
	if _, err := bw.WriteString("pods:\n"); err != nil {
		return fmt.Errorf("encode scenario: %w", err)
	}
	for i := range s.Pods {
		if err := encodeYAML(bw, []Pod{s.Pods[i]}, "  "); err != nil {
			return err
		}
	}
	if len(s.Faults) > 0 {
		if err := encodeYAML(bw, struct {
			Faults []Fault `yaml:"faults"`
		}{s.Faults}, ""); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("encode scenario: %w", err)
	}
	return nil
}

// encodeYAML writes v as a YAML fragment, each line prefixed by indent.
func encodeYAML(w *bufio.Writer, v any, indent string) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode scenario: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode scenario: %w", err)
	}
	for line := range bytes.Lines(buf.Bytes()) {
		if indent != "" && len(line) > 1 {
			w.WriteString(indent)
		}
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("encode scenario: %w", err)
		}
	}
	return nil
}

// UnmarshalYAML parses a Prometheus-style duration. A bad duration is
// reported as a type error so that decoding goes on and every problem of the
// file is listed.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: bad duration: want a string such as \"15s\" or \"1h30m\", got a %s", n.Line, kindName(n.Kind))}}
	}
	md, err := model.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: bad duration %q: %v", n.Line, n.Value, err)}}
	}
	*d = Duration(md)
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	return "scalar"
}

var lineRE = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors turns a decoding error into field errors. With the parsed tree,
// each message is located on a field path (see locator); a syntax error has
// only a line.
func yamlErrors(file string, root *yaml.Node, err error) []*FieldError {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	loc := newLocator(root)
	out := make([]*FieldError, 0, len(msgs))
	for _, m := range msgs {
		fe := &FieldError{File: file, Msg: strings.TrimPrefix(strings.TrimSpace(m), "yaml: ")}
		if g := lineRE.FindStringSubmatch(strings.TrimSpace(m)); g != nil {
			fe.Line, _ = strconv.Atoi(g[1])
			fe.Msg = g[2]
			fe.Field, fe.Msg = loc.locate(fe.Line, fe.Msg)
		} else if v, ok := badTime(fe.Msg); ok {
			// Times are decoded by time.Time.UnmarshalText, whose errors
			// carry the value but no line.
			fe.Field, fe.Line = loc.byValueAnywhere(v)
			fe.Msg = fmt.Sprintf("bad time %q: want RFC 3339 such as 2026-11-02T08:00:00Z", v)
		}
		out = append(out, fe)
	}
	return out
}

// lineOf finds the line of a field path such as "pods[3].devices[0].id" in
// the YAML tree; it returns the deepest line it can reach.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range splitPath(path) {
		switch {
		case part.index >= 0:
			if n.Kind != yaml.SequenceNode || part.index >= len(n.Content) {
				return line
			}
			n = n.Content[part.index]
		default:
			if n.Kind != yaml.MappingNode {
				return line
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part.key {
					next = n.Content[i+1]
					line = n.Content[i].Line
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
			continue
		}
		line = n.Line
	}
	return line
}

type pathPart struct {
	key   string
	index int
}

func splitPath(path string) []pathPart {
	var parts []pathPart
	for _, seg := range strings.Split(path, ".") {
		if seg == "" {
			continue
		}
		key := seg
		var idx []int
		if i := strings.IndexByte(seg, '['); i >= 0 {
			key = seg[:i]
			for _, p := range strings.Split(seg[i:], "[")[1:] {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "]"))
				if err == nil {
					idx = append(idx, n)
				}
			}
		}
		if key != "" {
			parts = append(parts, pathPart{key: key, index: -1})
		}
		for _, n := range idx {
			parts = append(parts, pathPart{index: n})
		}
	}
	return parts
}
