package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lock is a cluster's writer lock: a session-level PostgreSQL advisory lock
// held on a connection of its own for as long as the writer runs. If that
// connection ends (the server restarts, the connection is cut) the lock is
// gone and Held says so.
type Lock struct {
	cluster string
	mu      sync.Mutex
	conn    *pgx.Conn // nil once released
}

// TryLock makes the caller the writer of cluster, or fails with ErrLocked
// when another session holds the lock. The lock lives on its own
// connection, outside the pool.
func (s *Store) TryLock(ctx context.Context, cluster string) (*Lock, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("writer lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", lockWriter, clusterKey(cluster)).Scan(&ok); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("writer lock: %w", err)
	}
	if !ok {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("cluster %q: %w", cluster, ErrLocked)
	}
	s.log.Info("writer lock taken", "cluster", cluster)
	return &Lock{cluster: cluster, conn: conn}, nil
}

// WaitLock calls TryLock every interval until it succeeds, ctx ends, or
// an error other than ErrLocked or a transient one occurs.
func (s *Store) WaitLock(ctx context.Context, cluster string, interval time.Duration) (*Lock, error) {
	for {
		l, err := s.TryLock(ctx, cluster)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, ErrLocked) && !IsTransient(err) {
			return nil, err
		}
		s.log.Info("waiting for the writer lock", "cluster", cluster, "reason", err)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("writer lock of cluster %q: %w (last: %w)", cluster, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Cluster returns the cluster the lock is for.
func (l *Lock) Cluster() string { return l.cluster }

// Held returns nil while the lock is held, and an error wrapping
// ErrLockLost once its connection has ended or the lock was released. A
// writer checks it before each window.
func (l *Lock) Held(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return fmt.Errorf("cluster %q: %w: released", l.cluster, ErrLockLost)
	}
	var held bool
	err := l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
		  AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2)`,
		lockWriter, clusterKey(l.cluster)).Scan(&held)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = l.conn.Close(context.Background())
		l.conn = nil
		return fmt.Errorf("cluster %q: %w: %v", l.cluster, ErrLockLost, err)
	}
	if !held {
		return fmt.Errorf("cluster %q: %w", l.cluster, ErrLockLost)
	}
	return nil
}

// Release gives the lock up and closes its connection. Releasing twice is
// harmless.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	conn := l.conn
	l.conn = nil
	_, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", lockWriter, clusterKey(l.cluster))
	// Closing the session releases the lock in any case.
	if cerr := conn.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("release writer lock: %w", err)
	}
	return nil
}
