package deploy

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestImage checks the Dockerfile against what uses it: the programs the
// chart's containers run are the ones it copies from `make build` onto the
// PATH, its builder's Go is the go.mod's, its runtime has glibc (go-nvml
// loads the driver's libnvidia-ml.so.1), and alone it runs unprivileged.
func TestImage(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var froms, users, entry []string
	copied := map[string]string{} // program → the builder's path
	for _, line := range strings.Split(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			users = append(users, f[1])
		case "ENTRYPOINT":
			entry = f[1:]
		case "COPY":
			if len(f) > 3 && f[1] == "--from=build" && f[len(f)-1] == "/usr/local/bin/" {
				for _, src := range f[2 : len(f)-1] {
					copied[path.Base(src)] = src
				}
			}
		}
	}
	if len(froms) != 2 {
		t.Fatalf("stages %v, want a builder and a runtime", froms)
	}
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVersion == nil || !strings.HasPrefix(froms[0], "golang:"+string(goVersion[1])+"-") {
		t.Errorf("builder %s: want golang:<go.mod's go %s>-<debian release>", froms[0], goVersion)
	}
	if !strings.HasPrefix(froms[1], "debian:") || strings.Contains(froms[1], "alpine") {
		t.Errorf("runtime %s: want a Debian (glibc) image", froms[1])
	}
	if len(users) != 1 || users[0] == "0" || strings.HasPrefix(users[0], "root") || !regexp.MustCompile(`^\d+(:\d+)?$`).MatchString(users[0]) {
		t.Errorf("USER %v: want one numeric, unprivileged user (Kubernetes checks runAsNonRoot against a number)", users)
	}
	if !slices.Equal(entry, []string{`["` + suiteBinary + `"]`}) {
		t.Errorf("ENTRYPOINT %v, want [%q]", entry, suiteBinary)
	}

	// What make build writes is what the image copies.
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	built := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^BIN := (\S+)$|-o (bin/\S+)`).FindAllSubmatch(mk, -1) {
		built[string(append(m[1], m[2]...))] = true
	}
	for _, src := range copied {
		if !built[strings.TrimPrefix(src, "/src/")] {
			t.Errorf("the image copies %s, which make build does not write (it writes %v)", src, sorted(built))
		}
	}

	// Every program the chart runs is in the image.
	for _, w := range renderOverlay(t, "").workloads() {
		c := w.container(t)
		if len(c.Command) != 1 || copied[c.Command[0]] == "" {
			t.Errorf("%s %s runs %q; the image holds %v", w.kind, w.name, c.Command, sorted(mapKeys(copied)))
		}
	}
	for _, prog := range []string{suiteBinary, exporterBinary} {
		if copied[prog] == "" {
			t.Errorf("the image lacks %s", prog)
		}
	}
}
