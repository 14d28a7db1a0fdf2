package testlog

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Writers on several goroutines and a reader lose nothing (go test -race
// also checks that they do not race).
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				fmt.Fprintf(&b, "w%d-%d\n", i, j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := b.Count("\n"); n != 8*50 {
		t.Errorf("%d lines, want %d", n, 8*50)
	}
	if n := b.Count("w3-"); n != 50 {
		t.Errorf("%d lines of writer 3, want 50", n)
	}
}

func TestNew(t *testing.T) {
	cases := []struct {
		level  slog.Level
		want   []string // lines, in order
		warned int      // lines with msg=unreachable
	}{
		{slog.LevelDebug, []string{"level=DEBUG msg=probe", "level=INFO msg=ready", "level=WARN msg=unreachable state=timeout"}, 1},
		{slog.LevelInfo, []string{"level=INFO msg=ready", "level=WARN msg=unreachable state=timeout"}, 1},
		{slog.LevelError, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.level.String(), func(t *testing.T) {
			log, b := New(c.level)
			log.Debug("probe")
			log.Info("ready")
			log.Warn("unreachable", "state", "timeout")
			var got []string
			for line := range strings.Lines(b.String()) {
				_, rest, _ := strings.Cut(strings.TrimSpace(line), " ") // drop time=…
				got = append(got, rest)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("logged %q, want %q", got, c.want)
			}
			if n := b.Count("msg=unreachable"); n != c.warned {
				t.Errorf("Count = %d, want %d", n, c.warned)
			}
		})
	}
}
