package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPrincipal(t *testing.T) {
	p := Policy{AdminGroup: "/gpuledger-admins", Managers: map[string][]string{
		"cms": {"cms/managers"}, "atlas": {"atlas-leads", "cms/managers"}, "lhcb": {"lhcb-leads"}}}
	cases := []struct {
		name    string
		id      Identity
		admin   bool
		manages []string
	}{
		{"admin by groups claim", Identity{User: "root", Groups: []string{"gpuledger-admins"}}, true, nil},
		{"admin by wlcg path", Identity{User: "root", Groups: []string{NormalizeGroup("/gpuledger-admins")}}, true, nil},
		{"manager of two", Identity{User: "bob", Groups: []string{"cms", "cms/managers"}}, false, []string{"atlas", "cms"}},
		{"member only", Identity{User: "carol", Groups: []string{"cms"}}, false, nil},
		{"no groups", Identity{User: "dave"}, false, nil},
		{"a group named like a prefix", Identity{User: "eve", Groups: []string{"cms/managers-not"}}, false, nil},
	}
	for _, c := range cases {
		got := p.Principal(c.id)
		if got.Admin != c.admin || !reflect.DeepEqual(got.Manages, c.manages) || got.User != c.id.User {
			t.Errorf("%s: %+v, want admin %v manages %v", c.name, got, c.admin, c.manages)
		}
	}
	if pr := (&Policy{}).Principal(Identity{User: "x", Groups: []string{""}}); pr.Admin {
		t.Error("an empty admin group makes administrators")
	}
}

func TestCheckUsage(t *testing.T) {
	admin := Principal{User: "root", Admin: true}
	manager := Principal{User: "bob", Manages: []string{"cms"}}
	user := Principal{User: "carol"}
	anonymous := Principal{}
	cases := []struct {
		name            string
		p               Principal
		projects, users []string
		ok              bool
	}{
		{"admin anything", admin, []string{"x"}, []string{"y"}, true},
		{"manager, own project", manager, []string{"cms"}, nil, true},
		{"manager, other project", manager, []string{"atlas"}, nil, false},
		{"manager, a user", manager, nil, []string{"zoe"}, true},
		{"user, no filter", user, nil, nil, true},
		{"user, self", user, nil, []string{"carol"}, true},
		{"user, someone else", user, nil, []string{"bob"}, false},
		{"user, self and someone else", user, nil, []string{"carol", "bob"}, false},
		{"user, a project", user, []string{"cms"}, nil, false},
		{"no user claim", anonymous, nil, nil, false},
	}
	for _, c := range cases {
		err := c.p.CheckUsage(c.projects, c.users)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
	if err := user.CheckQuota(nil); !errors.Is(err, ErrForbidden) {
		t.Errorf("a user reads quotas: %v", err)
	}
	if err := manager.CheckQuota([]string{"atlas"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("a manager reads another project's quota: %v", err)
	}
	if err := manager.CheckQuota(nil); err != nil {
		t.Errorf("a manager reads quotas: %v", err)
	}
}

func TestLoadManagers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, err := LoadManagers(write("ok.yaml", "cms: /cms/managers\natlas: [atlas-leads, /atlas/admins]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"cms": {"cms/managers"}, "atlas": {"atlas-leads", "atlas/admins"}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("managers %v, want %v", m, want)
	}
	for body, msg := range map[string]string{
		"cms: {a: b}\n":  "want a group or a list",
		"cms: []\n":      "has no group",
		"cms: ['/']\n":   "empty group",
		"- cms\n":        "mapping",
		"cms: [[a]]\n":   "cms",
		"'': managers\n": "empty project",
	} {
		if _, err := LoadManagers(write("bad.yaml", body)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", body, err, msg)
		}
	}
	if _, err := LoadManagers(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file loads")
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := PrincipalFrom(context.Background()); ok {
		t.Error("a principal in an empty context")
	}
	ctx := WithPrincipal(context.Background(), Principal{User: "bob"})
	if p, ok := PrincipalFrom(ctx); !ok || p.User != "bob" {
		t.Errorf("PrincipalFrom = %+v %v", p, ok)
	}
	if u := Unauthenticated(); !u.Admin || !u.Unauthenticated {
		t.Errorf("Unauthenticated() = %+v", u)
	}
}
