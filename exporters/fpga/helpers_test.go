package fpga

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The fixture sysfs trees are txtar archives (testdata/sysfs/*.txtar): PCI
// addresses hold colons, which a Go module's file names may not, and the
// trees hold symbolic links. sysfsTree expands one into a temporary
// directory and returns it, the SysfsRoot of a test.
//
// Besides plain txtar, a header "-- NAME -> TARGET --" makes a symbolic link
// and "-- NAME [quoted] --" holds a Go string literal.
func sysfsTree(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "sysfs", name+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	files, err := parseArchive(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, f := range files {
		path := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.link != "" {
			err = os.Symlink(f.link, path)
		} else {
			err = os.WriteFile(path, f.data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

type archiveFile struct {
	name, link string
	data       []byte
}

// parseArchive reads the txtar variant described at sysfsTree.
func parseArchive(data []byte) ([]archiveFile, error) {
	var (
		files []archiveFile
		cur   *archiveFile
	)
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		s := strings.TrimRight(string(line), "\n")
		if strings.HasPrefix(s, "-- ") && strings.HasSuffix(s, " --") && len(s) > 6 {
			files = append(files, archiveFile{name: s[3 : len(s)-3]})
			cur = &files[len(files)-1]
			if n, target, ok := strings.Cut(cur.name, " -> "); ok {
				cur.name, cur.link = n, target
			}
			continue
		}
		if cur != nil {
			cur.data = append(cur.data, line...)
		}
	}
	for i := range files {
		f := &files[i]
		if n, ok := strings.CutSuffix(f.name, " [quoted]"); ok {
			s, err := strconv.Unquote(strings.TrimSpace(string(f.data)))
			if err != nil {
				return nil, err
			}
			f.name, f.data = n, []byte(s)
		}
	}
	return files, nil
}

// sharedDir is the project's shared reference directory, read in place:
// $GPULEDGER_SHARED or ../../../shared. The test skips when it is absent.
func sharedDir(t testing.TB, sub string) string {
	t.Helper()
	base := os.Getenv("GPULEDGER_SHARED")
	if base == "" {
		base = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(base, sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference files not found at %s (set GPULEDGER_SHARED to the shared directory): %v", dir, err)
	}
	return dir
}

// refFPGA is the FPGA reference directory.
func refFPGA(t testing.TB) string { return sharedDir(t, filepath.Join("reference", "fpga")) }
