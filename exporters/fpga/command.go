package fpga

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The reports asked of xbutil: what the parser reads.
var xbutilReports = []string{"thermal", "electrical", "mechanical", "platform"}

// Placeholders of a command line that spells out its own arguments.
const (
	placeholderBDF = "{bdf}"
	placeholderOut = "{out}"
)

// XRT's default install directory, searched after the PATH.
const xrtBinDir = "/opt/xilinx/xrt/bin"

// Limits on what a command may return.
const (
	maxJSON   = 16 << 20
	maxStderr = 4 << 10
)

// runner runs xbutil (or xrt-smi) for one card and returns the JSON it
// wrote.
type runner struct {
	argv    []string // program and leading arguments
	timeout time.Duration
}

// findXbutil looks for xrt-smi, then xbutil, on the PATH and in XRT's
// install directory. It returns "" when neither is found.
func findXbutil() string {
	for _, name := range []string{"xrt-smi", "xbutil"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		p := filepath.Join(xrtBinDir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// args returns the command line for a card, writing to out: the
// configured one with {bdf} and {out} replaced when it has either, else
// the configured one followed by
// "examine -d <bdf> -r thermal electrical mechanical platform -f JSON -o <out>".
func (r *runner) args(bdf, out string) []string {
	templated := false
	for _, a := range r.argv {
		if strings.Contains(a, placeholderBDF) || strings.Contains(a, placeholderOut) {
			templated = true
		}
	}
	if templated {
		argv := make([]string, len(r.argv))
		for i, a := range r.argv {
			argv[i] = strings.NewReplacer(placeholderBDF, bdf, placeholderOut, out).Replace(a)
		}
		return argv
	}
	argv := append([]string(nil), r.argv...)
	argv = append(argv, "examine", "-d", bdf, "-r")
	argv = append(argv, xbutilReports...)
	return append(argv, "-f", "JSON", "-o", out)
}

// errTimeout is wrapped when a command overran its timeout.
var errTimeout = errors.New("timed out")

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// run runs the command for one card and returns the JSON: the output file,
// or its standard output when it wrote no file (a wrapper script may print
// the JSON instead). A non-zero exit with a readable JSON returns both.
func (r *runner) run(ctx context.Context, bdf string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "gpuledger-xbutil-")
	if err != nil {
		return nil, fmt.Errorf("xbutil output directory: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "examine.json")
	argv := r.args(bdf, out)
	// The command as errors show it: without the temporary file, so that
	// the same failure reads the same every time.
	shown := strings.Join(r.args(bdf, placeholderOut), " ")

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	stdout := &limitedBuffer{max: maxJSON}
	stderr := &limitedBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	killGroup(cmd)
	// A child that keeps the pipes open must not keep us waiting.
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	switch err := ctx.Err(); {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%s: %w after %s", shown, errTimeout, r.timeout)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", shown, err)
	}
	data, readErr := readFile(out, maxJSON)
	if readErr != nil || len(bytes.TrimSpace(data)) == 0 {
		data = nil
		if s := bytes.TrimSpace(stdout.buf.Bytes()); len(s) > 0 && s[0] == '{' {
			data = s
		}
	}
	if runErr != nil {
		msg := strings.TrimSpace(stderr.buf.String())
		if msg != "" {
			msg = ": " + msg
		}
		return data, fmt.Errorf("%s: %w%s", shown, runErr, msg)
	}
	if data == nil {
		if readErr == nil {
			readErr = errors.New("empty")
		}
		return nil, fmt.Errorf("%s wrote no JSON: %w", shown, readErr)
	}
	return data, nil
}
