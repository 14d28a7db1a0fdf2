package pgtemp

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartStop(t *testing.T) {
	if _, err := BinDir(); errors.Is(err, ErrNoServer) && os.Getenv("CI") == "" {
		t.Skipf("no PostgreSQL server binaries here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Errorf("query: %d, %v", n, err)
	}
	c.Close(ctx)
	dir := s.dir
	s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s still there after Stop", dir)
	}
	if _, err := pgx.Connect(ctx, s.URL); err == nil {
		t.Error("server still answers after Stop")
	}
}
