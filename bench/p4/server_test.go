package p4

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/internal/devidp"
)

// The identity the benchmark's requests carry: an administrator, through
// the development identity provider, as the demo does.
const (
	audience   = "gpuledger"
	adminGroup = "gpuledger-admins"
	adminUser  = "p4-admin"
)

// startIdP starts a development identity provider on loopback and mints
// an administrator's access token.
func startIdP(tb testing.TB) (*devidp.Provider, string) {
	tb.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{ClientID: "gpuledger-p4",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Audience: audience,
		Users: []devidp.User{{Name: adminUser, Groups: []string{adminGroup}, Note: "administrator"}}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = idp.Close() })
	token, err := idp.Mint(adminUser, 3*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return idp, token
}

// buildBinary builds cmd/gpuledger into a temporary directory.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "gpuledger")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/gpuledger/gpuledger/cmd/gpuledger").CombinedOutput(); err != nil {
		tb.Fatalf("build gpuledger: %v\n%s", err, out)
	}
	return bin
}

// apiProcess is a running `gpuledger api`.
type apiProcess struct {
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:<port>
	log  *syncBuffer
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// syncBuffer keeps a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(line + "\n")
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenLine = regexp.MustCompile(`msg="serving the accounting API" address=(\S+)`)

// startAPI runs `gpuledger api` on a free loopback port against dbURL,
// checking tokens of issuer, and waits until it is ready.
func startAPI(tb testing.TB, bin, dbURL, issuer string) *apiProcess {
	tb.Helper()
	cmd := exec.Command(bin, "api", "--database-url", dbURL, "--listen-address", "127.0.0.1:0",
		"--oidc-issuer", issuer, "--oidc-audience", audience, "--admin-group", adminGroup, "--log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &apiProcess{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.log.add(sc.Text())
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		if err := p.stop(); err != nil {
			tb.Errorf("gpuledger api: %v\n%s", err, p.log)
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		tb.Fatalf("gpuledger api ended at start: %v\n%s", p.err, p.log)
	case <-time.After(time.Minute):
		tb.Fatalf("gpuledger api did not listen within a minute:\n%s", p.log)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gpuledger api not ready within a minute (%v):\n%s", err, p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the process with SIGTERM (a graceful shutdown) and waits.
func (p *apiProcess) stop() error {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill()
			<-p.done
			return errors.New("did not stop within a minute of SIGTERM")
		}
	}
	var exit *exec.ExitError
	if p.err != nil && !errors.As(p.err, &exit) {
		return p.err
	}
	if exit != nil && exit.ExitCode() != 0 {
		return p.err
	}
	return nil
}

// procMemory is a process's memory from /proc/<pid>/status, in bytes:
// resident now (rss, of which anonymous and file-backed pages) and at its
// peak (hwm, the high-water mark since the process started).
type procMemory struct {
	rss, hwm, anon, file int64
}

func (p *apiProcess) memory() (procMemory, error) {
	return readMemory(p.cmd.Process.Pid)
}

func readMemory(pid int) (procMemory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMemory{}, err
	}
	return parseStatus(string(b))
}

// parseStatus reads VmRSS, VmHWM, RssAnon and RssFile (kB) from a
// /proc/<pid>/status text.
func parseStatus(s string) (procMemory, error) {
	var m procMemory
	fields := map[string]*int64{"VmRSS": &m.rss, "VmHWM": &m.hwm, "RssAnon": &m.anon, "RssFile": &m.file}
	found := 0
	for line := range strings.Lines(s) {
		name, rest, ok := strings.Cut(line, ":")
		dst := fields[name]
		if !ok || dst == nil {
			continue
		}
		v := strings.Fields(rest)
		if len(v) != 2 || v[1] != "kB" {
			return m, fmt.Errorf("/proc status %s: %q", name, rest)
		}
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc status %s: %v", name, err)
		}
		*dst = n << 10
		found++
	}
	if found != len(fields) {
		return m, fmt.Errorf("/proc status: %d of VmRSS, VmHWM, RssAnon, RssFile found", found)
	}
	return m, nil
}

// load1 is the one-minute load average.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// clockTick is the unit of the CPU times of /proc/<pid>/stat (USER_HZ).
const clockTick = 10 * time.Millisecond

// cpuTime returns the user and system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(string(b))
}

// parseStat reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat text; the command name (field 2) may hold spaces and
// parentheses, so the fields are counted from its closing parenthesis.
func parseStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat %q: no command name", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat %q: %d fields", s, len(f)+2)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %v", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// selfCPU is the CPU time of this process: the load generator, its
// client, and the store-level baseline.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuUse is the CPU time used over a run.
type cpuUse struct {
	server, backends, self time.Duration
	local                  bool // the database's server processes were measured
}

// cpuMeter measures a run's CPU time: the API server's, this process's,
// and that of the database's server processes serving the benchmark's
// database when they run on this machine. The server processes are
// sampled every 200 ms, since a connection may end during the run (pgx
// closes one whose query a client's cancellation interrupted): each
// counts from its first sample (from 0 when it appeared during the run)
// to its last.
type cpuMeter struct {
	srv          *apiProcess
	server, self time.Duration
	first, last  map[int]time.Duration
	stop         chan struct{}
	done         chan struct{}
	conn         *pgx.Conn
	sampleErr    error
}

// startCPU starts measuring; srv may be nil.
func startCPU(ctx context.Context, dbURL string, srv *apiProcess) (*cpuMeter, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	m := &cpuMeter{srv: srv, conn: conn, first: map[int]time.Duration{}, last: map[int]time.Duration{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := m.sample(ctx, m.first); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	if srv != nil {
		if m.server, err = cpuTime(srv.cmd.Process.Pid); err != nil {
			conn.Close(ctx)
			return nil, err
		}
	}
	m.self = selfCPU()
	go func() {
		defer close(m.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				if err := m.sample(ctx, m.last); err != nil && m.sampleErr == nil {
					m.sampleErr = err
				}
			}
		}
	}()
	return m, nil
}

// sample records the CPU time of the database's server processes serving
// the benchmark's database (but the meter's own) into into.
func (m *cpuMeter) sample(ctx context.Context, into map[int]time.Duration) error {
	rows, err := m.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		return err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return err
	}
	for _, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue // not a server process of this machine
		}
		if t, err := cpuTime(int(pid)); err == nil {
			into[int(pid)] = t
		}
	}
	return nil
}

// end stops measuring and returns the CPU time used since startCPU.
func (m *cpuMeter) end(ctx context.Context) (cpuUse, error) {
	self := selfCPU()
	var server time.Duration
	if m.srv != nil {
		t, err := cpuTime(m.srv.cmd.Process.Pid)
		if err != nil {
			return cpuUse{}, err
		}
		server = t - m.server
	}
	close(m.stop)
	<-m.done
	err := m.sample(ctx, m.last)
	m.conn.Close(ctx)
	if err == nil {
		err = m.sampleErr
	}
	u := cpuUse{server: server, self: self - m.self, local: len(m.first)+len(m.last) > 0}
	for pid, t := range m.last {
		u.backends += t - m.first[pid]
	}
	return u, err
}
