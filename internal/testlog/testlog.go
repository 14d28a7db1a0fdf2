// Package testlog gives tests a sink for logs and process output that the
// code under test may write from its own goroutines while the test reads
// it, and a slog logger over it, for assertions such as "logged once".
package testlog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent writers and readers. The
// zero value is an empty buffer ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Count returns how many times substr occurs in what was written so far:
// with a substring found once per log line, how many lines were logged.
func (b *Buffer) Count(substr string) int {
	return strings.Count(b.String(), substr)
}

// New returns a logger writing text records at level and above into a new
// Buffer, and the Buffer.
func New(level slog.Leveler) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}
