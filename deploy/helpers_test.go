package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// baseValues are the values the plain manifests are rendered with.
func baseValues(t *testing.T) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(manifestValuesFile)
	if err != nil {
		t.Fatalf("read %s: %v", manifestValuesFile, err)
	}
	return v.AsMap()
}

// values returns the base values with overlay (YAML) over them.
func values(t *testing.T, overlay string) map[string]any {
	t.Helper()
	o, err := chartutil.ReadValues([]byte(overlay))
	if err != nil {
		t.Fatalf("overlay values: %v\n%s", err, overlay)
	}
	return chartutil.CoalesceTables(o.AsMap(), baseValues(t))
}

// testChart loads the chart with its generated files as the generator
// would write them; edit, when not nil, changes it before rendering.
func testChart(t *testing.T, edit func(*chart.Chart)) *chart.Chart {
	t.Helper()
	files, err := chartCopies()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loadChart(files)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(ch)
	}
	return ch
}

// release is a rendered chart, every object decoded.
type release struct {
	t    *testing.T
	objs []object
}

// renderRelease renders the chart with vals as release name and decodes
// every object strictly; any failure fails the test.
func renderRelease(t *testing.T, ch *chart.Chart, name string, vals map[string]any) release {
	t.Helper()
	m, err := render(ch, name, vals)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	return release{t: t, objs: objs}
}

// renderOverlay renders the chart as the manifests' release with overlay
// over the base values.
func renderOverlay(t *testing.T, overlay string) release {
	t.Helper()
	return renderRelease(t, testChart(t, nil), releaseName, values(t, overlay))
}

func (r release) all(kind string) []object {
	var out []object
	for _, o := range r.objs {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r release) lookup(kind, name string) (object, bool) {
	for _, o := range r.objs {
		if o.kind == kind && o.meta.GetName() == name {
			return o, true
		}
	}
	return object{}, false
}

func (r release) get(kind, name string) any {
	r.t.Helper()
	o, ok := r.lookup(kind, name)
	if !ok {
		r.t.Fatalf("no %s %s rendered; have %s", kind, name, r.names())
	}
	return o.obj
}

func (r release) names() string {
	var s []string
	for _, o := range r.objs {
		s = append(s, o.kind+"/"+o.meta.GetName())
	}
	return strings.Join(s, ", ")
}

func (r release) count(kind string) int { return len(r.all(kind)) }

// workload is a DaemonSet or Deployment: its pod template and selector.
type workload struct {
	kind, name string
	selector   map[string]string
	pod        *corev1.PodTemplateSpec
}

func (r release) workloads() []workload {
	var out []workload
	for _, o := range r.objs {
		switch w := o.obj.(type) {
		case *appsv1.DaemonSet:
			out = append(out, workload{o.kind, w.Name, w.Spec.Selector.MatchLabels, &w.Spec.Template})
		case *appsv1.Deployment:
			out = append(out, workload{o.kind, w.Name, w.Spec.Selector.MatchLabels, &w.Spec.Template})
		}
	}
	return out
}

func (r release) workload(kind, name string) workload {
	r.t.Helper()
	for _, w := range r.workloads() {
		if w.kind == kind && w.name == name {
			return w
		}
	}
	r.t.Fatalf("no %s %s rendered; have %s", kind, name, r.names())
	return workload{}
}

// selects tells whether a Service selector picks the workload's pods.
func selects(selector map[string]string, w workload) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(w.pod.Labels))
}

// container returns the pod's one container.
func (w workload) container(t *testing.T) *corev1.Container {
	t.Helper()
	if len(w.pod.Spec.Containers) != 1 {
		t.Fatalf("%s %s: %d containers, want 1", w.kind, w.name, len(w.pod.Spec.Containers))
	}
	return &w.pod.Spec.Containers[0]
}

// The programs of the image (Dockerfile) the chart's containers run.
const (
	suiteBinary    = "gpuledger"
	exporterBinary = "gpuledger-exporter"
)

// flagArgs splits a container's command and arguments into the command it
// runs — "gpuledger <subcommand>" or "gpuledger-exporter" — and its flags,
// name → value ("" for a flag without one). A repeated flag, an argument
// that is not a flag, or another program is an error.
func flagArgs(command, args []string) (string, map[string]string, error) {
	if len(command) != 1 {
		return "", nil, fmt.Errorf("command %q: want the program alone, its arguments in args", command)
	}
	cmd := command[0]
	switch cmd {
	case suiteBinary:
		if len(args) == 0 {
			return "", nil, fmt.Errorf("%s without a subcommand", cmd)
		}
		cmd, args = cmd+" "+args[0], args[1:]
	case exporterBinary:
	default:
		return "", nil, fmt.Errorf("command %q: the image holds %s and %s", cmd, suiteBinary, exporterBinary)
	}
	out := map[string]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			return "", nil, fmt.Errorf("argument %q is not a --flag", a)
		}
		name, val, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if _, dup := out[name]; dup {
			return "", nil, fmt.Errorf("--%s given twice", name)
		}
		out[name] = val
	}
	return cmd, out, nil
}

func mustFlags(t *testing.T, c *corev1.Container) (string, map[string]string) {
	t.Helper()
	cmd, flags, err := flagArgs(c.Command, c.Args)
	if err != nil {
		t.Fatalf("container %s: %v", c.Name, err)
	}
	return cmd, flags
}

// envVar returns a container's variable of that name.
func envVar(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// containerPort returns the container port of that name.
func containerPort(c *corev1.Container, name string) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

// mapKeys is the set of m's keys.
func mapKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The flag.FlagSet methods that define a flag, and the index of the
// flag's name among their arguments.
var flagDefiners = map[string]int{
	"String": 0, "Bool": 0, "Int": 0, "Int64": 0, "Uint": 0, "Uint64": 0, "Float64": 0, "Duration": 0,
	"Func": 0, "BoolFunc": 0,
	"StringVar": 1, "BoolVar": 1, "IntVar": 1, "Int64Var": 1, "UintVar": 1, "Uint64Var": 1,
	"Float64Var": 1, "DurationVar": 1, "Var": 1, "TextVar": 1,
}

// binaryFlags reads the source of the image's programs and returns, for
// each command — "gpuledger <subcommand>" for the subcommands of
// cmd/gpuledger's commands table, and "gpuledger-exporter" — the flags its
// function defines, with those of every function it calls, directly or
// not, in its package or in exporters/cli (whose Run both exporters call).
func binaryFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	defs := map[string]map[string]bool{} // function → flags it defines
	calls := map[string][]string{}       // function → functions it calls
	commands := map[string]string{}      // subcommand → function
	for _, pkg := range []struct{ dir, prefix string }{
		{"cmd/gpuledger", ""},
		{"cmd/gpuledger-exporter", exporterBinary + "."},
		{"exporters/cli", "cli."},
	} {
		readFuncs(t, filepath.Join(repoRoot, pkg.dir), pkg.prefix, defs, calls, commands)
	}
	if len(commands) == 0 {
		t.Fatal("no commands table found in cmd/gpuledger (func commands)")
	}
	closure := func(root string) map[string]bool {
		flags := map[string]bool{}
		seen := map[string]bool{}
		queue := []string{root}
		for len(queue) > 0 {
			fn := queue[0]
			queue = queue[1:]
			if seen[fn] {
				continue
			}
			seen[fn] = true
			for f := range defs[fn] {
				flags[f] = true
			}
			queue = append(queue, calls[fn]...)
		}
		return flags
	}
	out := map[string]map[string]bool{exporterBinary: closure(exporterBinary + ".main")}
	for cmd, root := range commands {
		out[suiteBinary+" "+cmd] = closure(root)
	}
	return out
}

// readFuncs reads the package-level functions of the Go package in dir
// into defs (the flags each defines) and calls (the functions each calls:
// those of its package by name, others as pkg.Name), each named with
// prefix, and the commands table (func commands) into commands.
func readFuncs(t *testing.T, dir, prefix string, defs map[string]map[string]bool, calls map[string][]string, commands map[string]string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", p, err)
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil || fd.Recv != nil {
				continue
			}
			fn := prefix + fd.Name.Name
			defs[fn] = map[string]bool{}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					switch fun := n.Fun.(type) {
					case *ast.Ident:
						calls[fn] = append(calls[fn], prefix+fun.Name)
					case *ast.SelectorExpr:
						if x, ok := fun.X.(*ast.Ident); ok {
							calls[fn] = append(calls[fn], x.Name+"."+fun.Sel.Name)
						}
						if i, ok := flagDefiners[fun.Sel.Name]; ok && len(n.Args) > i {
							if name, ok := stringLit(n.Args[i]); ok {
								defs[fn][name] = true
							}
						}
					}
				case *ast.KeyValueExpr:
					// The commands table: "name": {summary, function}.
					if fd.Name.Name != "commands" || prefix != "" {
						break
					}
					name, ok := stringLit(n.Key)
					lit, isLit := n.Value.(*ast.CompositeLit)
					if ok && isLit && len(lit.Elts) > 0 {
						if id, ok := lit.Elts[len(lit.Elts)-1].(*ast.Ident); ok {
							commands[name] = id.Name
						}
					}
				}
				return true
			})
		}
	}
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
