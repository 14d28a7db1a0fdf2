package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/internal/pgtest"
)

func TestMigrationsApplyOnce(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	// A reader finds no ledger and changes nothing.
	if _, err := Open(ctx, url, Options{NoMigrate: true}); !errors.Is(err, ErrNoSchema) {
		t.Errorf("Open without migrations of an empty database: %v, want ErrNoSchema", err)
	}
	// Several processes starting at once on an empty database.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, url, Options{})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	s, err := Open(ctx, url, Options{}) // and once more
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, latest int
	if err := s.pool.QueryRow(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &latest); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || latest != ms[len(ms)-1].version {
		t.Errorf("schema_migrations: %d rows up to %d, want %d up to %d", n, latest, len(ms), ms[len(ms)-1].version)
	}
	for _, tab := range allTables {
		if _, err := s.pool.Exec(ctx, "SELECT 1 FROM "+tab+" LIMIT 0"); err != nil {
			t.Errorf("table %s: %v", tab, err)
		}
	}
	if r, err := Open(ctx, url, Options{NoMigrate: true}); err != nil {
		t.Errorf("Open without migrations of a ledger: %v", err)
	} else {
		r.Close()
	}

	// A database migrated by a newer gpuledger is refused, not altered.
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, url, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nothing listens on port 1: the error is transient (retry later).
	_, err := Open(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", Options{})
	if err == nil || !IsTransient(err) {
		t.Errorf("Open of a server that is down: %v, want a transient error", err)
	}
	_, err = Open(ctx, "postgres://%zz", Options{})
	if err == nil || IsTransient(err) {
		t.Errorf("Open of a bad URL: %v, want a permanent error", err)
	}
}

func TestIsTransient(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "40001"}, true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "57P03"}, true},
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table
		{fmt.Errorf("apply: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("apply: %w", pgconn.ErrConnClosed), true},
		{fmt.Errorf("%w: %w", ErrBadWindow, errors.New("x")), false},
	}
	for _, c := range cases {
		if got := IsTransient(c.err); got != c.want {
			t.Errorf("IsTransient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	b := Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	calls := 0
	err := Retry(ctx, b, nil, "x", func(context.Context) error {
		calls++
		if calls < 3 {
			return &pgconn.PgError{Code: "57P01"}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("transient twice then ok: %v after %d calls", err, calls)
	}
	calls = 0
	perm := errors.New("permanent")
	if err := Retry(ctx, b, nil, "x", func(context.Context) error { calls++; return perm }); !errors.Is(err, perm) || calls != 1 {
		t.Errorf("permanent: %v after %d calls", err, calls)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err = Retry(short, b, nil, "x", func(context.Context) error { return io.ErrUnexpectedEOF })
	if !errors.Is(err, ErrGaveUp) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("always transient until the context ends: %v, want ErrGaveUp, the deadline and the last error", err)
	}
	calls = 0
	b.MaxElapsed = 20 * time.Millisecond
	err = Retry(ctx, b, nil, "x", func(context.Context) error { calls++; return io.ErrUnexpectedEOF })
	if !errors.Is(err, ErrGaveUp) || IsTransient(err) || calls < 2 {
		t.Errorf("always transient for MaxElapsed: %v after %d calls, want ErrGaveUp, not transient", err, calls)
	}
}

func TestWriterLock(t *testing.T) {
	s1, url := newStore(t, Options{})
	ctx := context.Background()
	s2, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	l1, err := s1.TryLock(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := l1.Held(ctx); err != nil {
		t.Errorf("Held: %v", err)
	}
	if _, err := s2.TryLock(ctx, "c1"); !errors.Is(err, ErrLocked) {
		t.Errorf("second writer of c1: %v, want ErrLocked", err)
	}
	other, err := s2.TryLock(ctx, "c2")
	if err != nil {
		t.Fatalf("writer of another cluster: %v", err)
	}
	defer other.Release(ctx)

	// The second aggregator waits and takes over once the first lets go.
	got := make(chan *Lock, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l, err := s2.WaitLock(wctx, "c1", 10*time.Millisecond)
		if err != nil {
			t.Errorf("WaitLock: %v", err)
		}
		got <- l
	}()
	time.Sleep(50 * time.Millisecond)
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l1.Held(ctx); !errors.Is(err, ErrLockLost) {
		t.Errorf("Held after Release: %v, want ErrLockLost", err)
	}
	l2 := <-got
	if l2 == nil {
		t.FailNow()
	}
	if err := l2.Held(ctx); err != nil {
		t.Errorf("Held by the second writer: %v", err)
	}

	// The connection holding the lock is cut: the writer learns it lost
	// the lock, and another can take it.
	if _, err := s1.pool.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2`,
		lockWriter, clusterKey("c1")); err != nil {
		t.Fatal(err)
	}
	if err := l2.Held(ctx); !errors.Is(err, ErrLockLost) {
		t.Errorf("Held after the connection was cut: %v, want ErrLockLost", err)
	}
	l3, err := s1.TryLock(ctx, "c1")
	if err != nil {
		t.Fatalf("TryLock after the holder died: %v", err)
	}
	_ = l3.Release(ctx)
	_ = l2.Release(ctx)
}

func TestApplyWindowConnectionKilled(t *testing.T) {
	s, url := newStore(t, Options{})
	ctx := context.Background()
	w1 := win(at(0, 0), at(0, 5), iv("a", at(0, 0), 0, seen(at(0, 5))))
	w2 := win(at(0, 5), at(0, 10), iv("a", at(0, 0), at(0, 7)), iv("b", at(0, 6), 0, seen(at(0, 10))))
	w2.Usage = []observe.Usage{{AllocKey: w2.Intervals[1].AllocKey, UsedMilliGPUSeconds: 7}}
	apply(t, s, w1)
	before := dump(t, s)

	// Another session holds hour 08:00's row, so that applying w2 stops
	// half-way: after its intervals, window rows and watermark are written,
	// at the recompute of the hour.
	blocker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	tx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM ledger_hourly FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ApplyWindow(ctx, w2) }()

	// Polled outside the blocker's transaction, whose view of
	// pg_stat_activity is a snapshot taken once.
	var pid int32
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 {
		err := s.pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM ledger_hourly%'`).Scan(&pid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("ApplyWindow never reached the recompute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.pool.Exec(ctx, "SELECT pg_terminate_backend($1, 5000)", pid); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if err == nil || !IsTransient(err) {
		t.Fatalf("ApplyWindow on a killed connection: %v, want a transient error", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if d := diffDumps(before, dump(t, s)); d != "" {
		t.Fatalf("a killed transaction left a partial window:\n%s", d)
	}

	// The caller's retry succeeds and counts every second once.
	if err := Retry(ctx, Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}, nil, "apply",
		func(ctx context.Context) error { return s.ApplyWindow(ctx, w2) }); err != nil {
		t.Fatal(err)
	}
	sameRows(t, "hourly rows after the retry", hourlyRows(t, s, testCluster, "ledger_hourly"), []string{
		"00:00 cms bob gpu A100 - - 660000 660 7 0 0 0", // a 420 s + b 240 s
	})
	// b is still open: a restarted aggregator gets it back as it was stored.
	open, err := s.OpenIntervals(ctx, testCluster)
	if err != nil || len(open) != 1 || open[0] != w2.Intervals[1] {
		t.Errorf("OpenIntervals = %+v, %v; want [%+v]", open, err, w2.Intervals[1])
	}
}
