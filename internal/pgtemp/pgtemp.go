// Package pgtemp starts a private, throwaway PostgreSQL server from the
// system's server binaries (Debian package postgresql), for the demo and
// for anyone who wants to try gpuledger without a database: a fresh
// cluster in a temporary directory, listening on a free loopback port,
// removed when stopped. Durability is off (fsync=off): nothing in it is
// meant to survive.
package pgtemp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoServer is returned when no PostgreSQL server binaries are installed.
var ErrNoServer = errors.New("no PostgreSQL server binaries (install the Debian package postgresql)")

// Server is a running throwaway server.
type Server struct {
	// URL connects to its postgres database as the superuser postgres.
	URL     string
	Version string
	dir     string
	cmd     *exec.Cmd
	done    chan error
}

// BinDir finds the newest /usr/lib/postgresql/<version>/bin holding initdb
// and postgres.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoServer
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// Start creates and starts a server. PostgreSQL refuses to run as root, so
// as root it runs as the system user postgres.
func Start(ctx context.Context) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gpuledger-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, Version: filepath.Base(filepath.Dir(bin))}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	var runAs *user.User
	if os.Geteuid() == 0 {
		if runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("pgtemp: running as root needs the system user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(runAs.Uid)
		gid, _ := strconv.Atoi(runAs.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := command(ctx, runAs, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtemp: initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.cmd = command(context.Background(), runAs, filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("pgtemp: start postgres: %w", err)
	}
	s.done = make(chan error, 1)
	go func() {
		err := s.cmd.Wait()
		logf.Close()
		s.done <- err
	}()
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func command(ctx context.Context, runAs *user.User, name string, args ...string) *exec.Cmd {
	if runAs == nil {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "runuser", append([]string{"-u", runAs.Username, "--", name}, args...)...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := pgx.Connect(ctx, s.URL)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case exitErr := <-s.done:
			s.done <- exitErr
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("pgtemp: postgres exited (%v): %s", exitErr, strings.TrimSpace(string(log)))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtemp: postgres not ready after %s: %v", timeout, err)
		}
	}
}

// postmasterPID reads the server's process ID from its pid file.
func (s *Server) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// Stop shuts the server down (fast shutdown) and removes its files.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil && s.done != nil {
		// Signal the postmaster itself (under runuser it is a grandchild):
		// SIGINT is PostgreSQL's fast shutdown.
		pid := s.postmasterPID()
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGINT)
		} else {
			_ = s.cmd.Process.Signal(syscall.SIGINT)
		}
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}
