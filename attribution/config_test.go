package attribution

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// aiInfnRules is the example of docs/attribution.md.
const aiInfnRules = `# AI_INFN: JupyterHub users, Kueue queues per experiment.
user:
  - from: annotation
    key: hub.jupyter.org/username
  - from: label
    key: ai-infn.infn.it/user
  - from: service_account
project:
  - from: cluster_queue
  - from: namespace_label
    key: ai-infn.infn.it/project
  - from: namespace
`

func TestParseRules(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want Rules
	}{
		{
			name: "AI_INFN example",
			src:  aiInfnRules,
			want: Rules{
				User: []Source{
					{From: FromAnnotation, Key: AnnotationJupyterHubUser},
					{From: FromLabel, Key: "ai-infn.infn.it/user"},
					{From: FromServiceAccount},
				},
				Project: []Source{
					{From: FromClusterQueue},
					{From: FromNamespaceLabel, Key: "ai-infn.infn.it/project"},
					{From: FromNamespace},
				},
			},
		},
		{
			name: "a list left out keeps its default",
			src:  "user:\n  - from: label\n    key: team/user\n",
			want: Rules{User: []Source{{From: FromLabel, Key: "team/user"}}, Project: Default().Project},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRules("rules.yaml", []byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseRulesAlias(t *testing.T) {
	src := "user:\n  - &sa {from: service_account}\nproject:\n  - from: namespace\n  - *sa\n"
	got, err := ParseRules("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := Rules{User: []Source{{From: FromServiceAccount}}, Project: []Source{{From: FromNamespace}, {From: FromServiceAccount}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseRulesErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // one per problem, in order: "line: field: message fragment"
	}{
		{
			name: "unknown from",
			src:  "user:\n  - from: annotation\n    key: a\n  - from: anotation\n    key: b\n",
			want: []string{`rules.yaml:4: user[1].from: unknown source "anotation"`},
		},
		{
			name: "missing key",
			src:  "user:\n  - from: service_account\nproject:\n  - from: namespace_label\n",
			want: []string{`rules.yaml:4: project[0]: from "namespace_label" needs a "key"`},
		},
		{
			name: "missing from",
			src:  "project:\n  - key: team\n",
			want: []string{`rules.yaml:2: project[0]: missing "from"`},
		},
		{
			name: "key on a source that reads none",
			src:  "project:\n  - from: namespace\n    key: team\n",
			want: []string{`rules.yaml:3: project[0].key: from "namespace" reads no key`},
		},
		{
			name: "unknown fields at both levels",
			src:  "users:\n  - from: label\nproject:\n  - from: namespace\n    kye: x\n",
			want: []string{
				`rules.yaml:1: users: unknown field (known: user, project)`,
				`rules.yaml:5: project[0].kye: unknown field (known: from, key)`,
			},
		},
		{
			name: "every problem reported",
			src:  "user:\n  - from: nope\n  - from: label\nproject: []\n",
			want: []string{
				`rules.yaml:2: user[0].from: unknown source "nope"`,
				`rules.yaml:3: user[1]: from "label" needs a "key"`,
				`rules.yaml:4: project: no sources`,
			},
		},
		{
			name: "list set twice",
			src:  "user:\n  - from: service_account\nuser:\n  - from: namespace\n",
			want: []string{`rules.yaml:3: user: set twice (first at line 1)`},
		},
		{
			name: "field set twice",
			src:  "user:\n  - from: label\n    key: a\n    key: b\n",
			want: []string{`rules.yaml:4: user[0].key: set twice (first at line 3)`},
		},
		{
			name: "not a list",
			src:  "user: annotation\n",
			want: []string{`rules.yaml:1: user: want a list of sources, found "annotation"`},
		},
		{
			name: "source not a mapping",
			src:  "user:\n  - annotation\n",
			want: []string{`rules.yaml:2: user[0]: want a source mapping (from, key), found "annotation"`},
		},
		{
			name: "value not a string",
			src:  "user:\n  - from: [label]\n",
			want: []string{`rules.yaml:2: user[0].from: want a string, found a list`},
		},
		{
			name: "not a mapping",
			src:  "- from: label\n",
			want: []string{`rules.yaml:1: want a mapping with the lists user and project, found a list`},
		},
		{
			name: "syntax error",
			src:  "user:\n\t- from: label\n",
			want: []string{`rules.yaml:2: found character that cannot start any token`},
		},
		{
			name: "empty",
			src:  "# nothing\n",
			want: []string{`rules.yaml: empty rules file`},
		},
		{
			name: "two documents",
			src:  "user:\n  - from: namespace\n---\nproject:\n  - from: namespace\n",
			want: []string{`rules.yaml:3: more than one YAML document`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRules("rules.yaml", []byte(c.src))
			var errs ConfigErrors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v is not ConfigErrors", err)
			}
			if len(errs) != len(c.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(c.want), err)
			}
			for i, w := range c.want {
				if got := errs[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d: got %q, want it to start with %q", i, got, w)
				}
			}
		})
	}
}

func TestLoadRules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(aiInfnRules), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRules(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.User) != 3 || r.User[1].Key != "ai-infn.infn.it/user" {
		t.Errorf("loaded %+v", r)
	}
	if _, err := LoadRules(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Errorf("default rules: %v", err)
	}
	bad := Rules{User: []Source{{From: "ldap"}}, Project: nil}
	err := bad.Validate()
	var errs ConfigErrors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("got %v, want 2 problems", err)
	}
	if !strings.Contains(errs[0].Error(), `user[0].from: unknown source "ldap"`) || !strings.Contains(errs[1].Error(), "project: no sources") {
		t.Errorf("got %v", err)
	}
}

// The example of docs/attribution.md parses as the test's copy does.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/attribution.md")
	if err != nil {
		t.Skipf("docs/attribution.md: %v", err)
	}
	if !strings.Contains(string(doc), aiInfnRules) {
		t.Error("docs/attribution.md no longer holds the AI_INFN example this test parses")
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte(aiInfnRules))
	f.Add([]byte("user:\n  - from: nope\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules("fuzz.yaml", data)
		if err != nil {
			var errs ConfigErrors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not ConfigErrors", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed rules do not validate: %v", err)
		}
	})
}
