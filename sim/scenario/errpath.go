package scenario

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML decoder reports problems by line only. A locator finds the field
// path a message is about by looking, on that line of the parsed tree, for
// the key or value the message names.

// entry is one field of the tree: a mapping value under its key, or a
// sequence item (key nil).
type entry struct {
	path string
	key  *yaml.Node
	val  *yaml.Node
}

type locator struct {
	entries []entry
	used    map[int]bool // entries already named by an earlier message
}

// maxLocatorEntries bounds the walk of pathological documents.
const maxLocatorEntries = 1 << 20

func newLocator(root *yaml.Node) *locator {
	l := &locator{used: map[int]bool{}}
	if root == nil {
		return l
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	l.walk(n, "")
	return l
}

func (l *locator) walk(n *yaml.Node, path string) {
	if len(l.entries) >= maxLocatorEntries {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			l.entries = append(l.entries, entry{path: p, key: k, val: v})
			l.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			l.entries = append(l.entries, entry{path: p, val: v})
			l.walk(v, p)
		}
	}
	// Aliases are not followed: their errors are reported where the
	// decoder meets them, on the anchor's line.
}

var (
	unknownFieldRE = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	fieldSetRE     = regexp.MustCompile(`^field (.+) already set in type (\S+)$`)
	duplicateKeyRE = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	cannotRE       = regexp.MustCompile("(?s)^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (\\S+)$")
	badDurationRE  = regexp.MustCompile(`^bad duration ("(?:[^"\\]|\\.)*")`)
	anyDurationRE  = regexp.MustCompile(`^bad duration:`)
	badTimeRE      = regexp.MustCompile(`^parsing time ("(?:[^"\\]|\\.)*")`)
)

// badTime returns the value of a time.Time parse error.
func badTime(msg string) (string, bool) {
	g := badTimeRE.FindStringSubmatch(msg)
	if g == nil {
		return "", false
	}
	var v string
	if _, err := fmt.Sscanf(g[1], "%q", &v); err != nil {
		return "", false
	}
	return v, true
}

// byValueAnywhere finds the first scalar field whose value is value, and
// its line.
func (l *locator) byValueAnywhere(value string) (string, int) {
	for i, e := range l.entries {
		if e.val.Kind == yaml.ScalarNode && e.val.Value == value && !l.used[i] {
			l.used[i] = true
			return e.path, e.val.Line
		}
	}
	return "", 0
}

// locate returns the field path a decoder message on line is about and the
// message to show (some are reworded to name the problem plainly).
func (l *locator) locate(line int, msg string) (field, out string) {
	switch {
	case unknownFieldRE.MatchString(msg):
		g := unknownFieldRE.FindStringSubmatch(msg)
		return l.byKey(line, g[1]), fmt.Sprintf("unknown field %q", g[1])
	case fieldSetRE.MatchString(msg):
		g := fieldSetRE.FindStringSubmatch(msg)
		return l.byKey(line, g[1]), fmt.Sprintf("field %q set twice", g[1])
	case duplicateKeyRE.MatchString(msg):
		g := duplicateKeyRE.FindStringSubmatch(msg)
		return l.byKey(line, g[1]), fmt.Sprintf("key %q already defined at line %s", g[1], g[2])
	case cannotRE.MatchString(msg):
		g := cannotRE.FindStringSubmatch(msg)
		tag, value, typ := g[1], g[2], g[3]
		f := l.byValue(line, tag, value)
		if tag == "!!map" || tag == "!!seq" {
			return f, fmt.Sprintf("want %s, got a %s", typeName(typ), strings.TrimPrefix(tag, "!!"))
		}
		return f, fmt.Sprintf("want %s, got %s %q", typeName(typ), tag, value)
	case badDurationRE.MatchString(msg):
		var v string
		if _, err := fmt.Sscanf(badDurationRE.FindStringSubmatch(msg)[1], "%q", &v); err == nil {
			return l.byValue(line, "", v), msg
		}
	case anyDurationRE.MatchString(msg):
		return l.byValue(line, "!!coll", ""), msg
	}
	return l.first(line), msg
}

// typeName shows a Go type in the words of the format.
func typeName(t string) string {
	switch t {
	case "int", "int64", "uint", "uint64", "int32":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "time.Time", "*time.Time":
		return "an RFC 3339 time such as 2026-11-02T08:00:00Z"
	}
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "scenario."), strings.HasPrefix(t, "*scenario."):
		return "a mapping (" + strings.TrimPrefix(strings.TrimPrefix(t, "*"), "scenario.") + ")"
	}
	return t
}

// byKey finds the field whose key on line is name.
func (l *locator) byKey(line int, name string) string {
	for i, e := range l.entries {
		if e.key != nil && e.key.Line == line && e.key.Value == name && !l.used[i] {
			l.used[i] = true
			return e.path
		}
	}
	return l.first(line)
}

// byValue finds the field whose value on line is value (the decoder cuts
// long values to 7 characters and "..."); a mapping or sequence tag matches
// a node of that kind.
func (l *locator) byValue(line int, tag, value string) string {
	match := func(n *yaml.Node) bool {
		switch tag {
		case "!!map":
			return n.Kind == yaml.MappingNode
		case "!!seq":
			return n.Kind == yaml.SequenceNode
		case "!!coll":
			return n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode
		}
		if n.Kind != yaml.ScalarNode {
			return false
		}
		if p, cut := strings.CutSuffix(value, "..."); cut && len(p) == 7 {
			return strings.HasPrefix(n.Value, p)
		}
		return n.Value == value
	}
	for i, e := range l.entries {
		if e.val.Line == line && match(e.val) && !l.used[i] {
			l.used[i] = true
			return e.path
		}
	}
	return l.first(line)
}

// first returns the first field on line, or "" when none starts there.
func (l *locator) first(line int) string {
	for _, e := range l.entries {
		if (e.key != nil && e.key.Line == line) || (e.key == nil && e.val.Line == line) {
			return e.path
		}
	}
	return ""
}
