package exporters

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/metrics/metricsdoc"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

const metricsDoc = "../docs/metrics.md"

// libraryMetrics are served through library collectors whose names the
// code does not spell out (checked by gathering StaticRegistry).
var libraryMetrics = []string{"gpuledger_build_info"}

// codeMetrics returns the first argument of every prometheus.NewDesc in the
// non-test Go files under exporters/, by name, with its position.
func codeMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "NewDesc" {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			pos := fset.Position(call.Pos()).String()
			name, ok := literalName(call.Args[0])
			if !ok {
				t.Errorf("%s: prometheus.NewDesc name is neither a literal nor Namespace+literal", pos)
				return true
			}
			if other, dup := out[name]; dup {
				t.Errorf("%s: %s already described at %s", pos, name, other)
			}
			out[name] = pos
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// literalName evaluates "lit", Namespace+"lit" or collector.Namespace+"lit".
func literalName(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		var prefix bool
		switch x := e.X.(type) {
		case *ast.Ident:
			prefix = x.Name == "Namespace"
		case *ast.SelectorExpr:
			pkg, ok := x.X.(*ast.Ident)
			prefix = ok && pkg.Name == "collector" && x.Sel.Name == "Namespace"
		}
		if !prefix {
			return "", false
		}
		rest, ok := literalName(e.Y)
		return collector.Namespace + rest, ok
	}
	return "", false
}

func TestMetricsDocMatchesCode(t *testing.T) {
	doc, err := metricsdoc.Read(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	code := codeMetrics(t)
	for name := range code {
		// The process collector's families, documented as a group
		// (process_*) beside the table.
		if strings.HasPrefix(name, "process_") {
			delete(code, name)
		}
	}
	for _, n := range libraryMetrics {
		code[n] = "library collector"
	}
	for name, pos := range code {
		if _, ok := doc[name]; !ok {
			t.Errorf("%s (%s) is missing from %s", name, pos, metricsDoc)
		}
	}
	for name, row := range doc {
		if _, ok := code[name]; !ok {
			t.Errorf("%s:%d: %s is documented but no code describes it", metricsDoc, row.Line, name)
		}
	}

	// Types and labels, from a gather of every node of small.yaml at
	// instants that show every family.
	s, err := scenario.Load("../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var served []*dto.MetricFamily // the first of each family
	for _, n := range s.Nodes {
		src, err := sim.New(s, allocs, n.Name, clock.Fixed(s.Start), sim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, when := range []string{"2026-11-02T09:00:00Z", "2026-11-02T11:07:00Z"} {
			at, _ := time.Parse(time.RFC3339, when)
			c, err := src.At(at)
			if err != nil {
				t.Fatal(err)
			}
			reg := StaticRegistry(false)
			reg.MustRegister(collector.NewExporter(map[string]collector.Collector{"sim": c}, 0, nil))
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if !seen[mf.GetName()] {
					served = append(served, mf)
				}
				seen[mf.GetName()] = true
			}
		}
	}
	for _, err := range metricsdoc.Compare(doc, served) {
		t.Errorf("%s: %v", metricsDoc, err)
	}
	for name := range doc {
		if !seen[name] && simServed(code[name]) {
			t.Errorf("%s is documented but the simulated cluster never served it", name)
		}
	}
}

// simServed reports whether the family described at pos is one the
// simulated source serves: those of exporters/metrics/metrics.go. The
// families of the real sources (nvml.go, dcgm.go, fpga.go, …) have their
// types and labels checked against this document by their packages' tests.
func simServed(pos string) bool {
	return strings.HasPrefix(pos, filepath.Join("metrics", "metrics.go")+":")
}

// TestLiteralName pins what the doc check can read.
func TestLiteralName(t *testing.T) {
	cases := []struct {
		src  string
		want string
		ok   bool
	}{
		{`"gpuledger_x_total"`, "gpuledger_x_total", true},
		{`Namespace + "_y_bytes"`, "gpuledger_y_bytes", true},
		{`collector.Namespace + "_z"`, "gpuledger_z", true},
		{`other.Namespace + "_z"`, "", false},
		{`name`, "", false},
		{`prometheus.BuildFQName("a", "b", "c")`, "", false},
		{`42`, "", false},
	}
	for _, c := range cases {
		e, err := parser.ParseExpr(c.src)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := literalName(e)
		if got != c.want || ok != c.ok {
			t.Errorf("literalName(%s) = %q, %v; want %q, %v", c.src, got, ok, c.want, c.ok)
		}
	}
}

// The library metrics really are what StaticRegistry serves.
func TestLibraryMetrics(t *testing.T) {
	mfs, err := StaticRegistry(false).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	if !slices.Equal(got, libraryMetrics) {
		t.Errorf("StaticRegistry serves %v, the doc check expects %v", got, libraryMetrics)
	}
	var _ prometheus.Gatherer = StaticRegistry(true)
}
