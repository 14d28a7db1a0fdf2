package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// docsOpenAPI is the hand-written document the embedded copy comes from.
const docsOpenAPI = "../docs/openapi.json"

type openAPIDoc struct {
	Paths map[string]map[string]struct {
		Parameters []map[string]any           `json:"parameters"`
		Responses  map[string]json.RawMessage `json:"responses"`
		Security   *[]map[string][]string     `json:"security"`
	} `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(OpenAPIDocument(), &doc); err != nil {
		t.Fatalf("the OpenAPI document is not JSON: %v", err)
	}
	return doc
}

// TestOpenAPIMatchesRoutes walks the router: every route is documented,
// and every documented operation is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s, err := New(Options{Ledger: &fakeLedger{}, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	doc := loadOpenAPI(t)
	var routes []string
	err = chi.Walk(s.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, strings.ToLower(method)+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in docs/openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("docs/openapi.json documents %s, which the server does not route", d)
		}
	}
	if len(routes) < 9 {
		t.Errorf("only %d routes: %v", len(routes), routes)
	}
}

// TestOpenAPIDocument checks the document itself: the served copy is
// docs/openapi.json, every $ref resolves, every protected operation can
// answer 401 and 403, and the public routes need no token.
func TestOpenAPIDocument(t *testing.T) {
	docs, err := os.ReadFile(docsOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, OpenAPIDocument()) {
		t.Errorf("api/openapi.json differs from %s: run go generate ./api", docsOpenAPI)
	}
	doc := loadOpenAPI(t)
	var all any
	_ = json.Unmarshal(OpenAPIDocument(), &all)
	walkRefs(all, func(ref string) {
		parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
		if !strings.HasPrefix(ref, "#/components/") || len(parts) != 2 || doc.Components[parts[0]][parts[1]] == nil {
			t.Errorf("$ref %s does not resolve", ref)
		}
	})
	public := []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			open := op.Security != nil && len(*op.Security) == 0
			if slices.Contains(public, path) != open {
				t.Errorf("%s %s: security %v", method, path, op.Security)
			}
			if !open && (op.Responses["401"] == nil || op.Responses["403"] == nil || op.Responses["400"] == nil) {
				t.Errorf("%s %s does not document 400, 401 and 403", method, path)
			}
		}
	}
}

func walkRefs(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				fn(s)
			}
			walkRefs(e, fn)
		}
	case []any:
		for _, e := range x {
			walkRefs(e, fn)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, &fakeLedger{}, nil)
	resp, b := e.get(t, "", "/api/v1/openapi.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(b, OpenAPIDocument()) {
		t.Errorf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
