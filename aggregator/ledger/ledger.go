// Package ledger is the aggregator's PostgreSQL ledger. It stores the
// Windows the interval reconstruction produces (aggregator/observe) and
// keeps from them hourly rows in integer units — milli-GPU-seconds,
// seconds, millijoules — keyed by cluster, hour, project, user, namespace,
// resource class, device model, MIG profile and site, with day and month
// rollups, cluster capacity rows, and the raw intervals for audit.
//
// The rules (docs/ledger-schema.md gives the tables):
//
//   - ApplyWindow writes one Window in one transaction. Applying the same
//     Window again changes nothing; a transaction that fails leaves nothing.
//   - Hourly rows are recomputed from the stored intervals and window rows,
//     never incremented: allocated = weight_milli × the seconds of
//     [start, end) inside the hour, an open interval running to the
//     watermark (the end of the latest window applied).
//   - Late data (a Window for an earlier time, an interval that ends
//     earlier or later than before) recomputes exactly the hours it touches.
//   - A closed month (CloseMonth) is frozen: later changes to its hours are
//     written to the adjustments journal, which reports add back.
//   - One aggregator per cluster writes (TryLock); transient database
//     errors are reported as such (IsTransient) so the caller retries.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of the package, to test with errors.Is.
var (
	// ErrBadWindow is a Window that cannot be applied as given.
	ErrBadWindow = errors.New("bad window")
	// ErrWindowOverlap is a Window that overlaps a stored window with other
	// bounds: applying it would count some seconds twice.
	ErrWindowOverlap = errors.New("window overlaps a stored window")
	// ErrLocked means another aggregator holds the cluster's writer lock.
	ErrLocked = errors.New("another aggregator is the writer for this cluster")
	// ErrLockLost means the writer lock's connection ended: another
	// aggregator may now be the writer.
	ErrLockLost = errors.New("writer lock lost")
	// ErrCannotClose is a month that may not be closed (yet).
	ErrCannotClose = errors.New("month cannot be closed")
	// ErrBadQuery is a report query that cannot be answered.
	ErrBadQuery = errors.New("bad report query")
	// ErrSchemaTooNew is a database migrated by a newer gpuledger.
	ErrSchemaTooNew = errors.New("database schema is newer than this gpuledger")
	// ErrNoSchema is a database without the ledger's current schema, opened
	// with Options.NoMigrate.
	ErrNoSchema = errors.New("database does not hold the current gpuledger ledger schema")
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Logger receives the store's log lines; nil discards them.
	Logger *slog.Logger
	// MaxConns bounds the connection pool (default: pgxpool's).
	MaxConns int32
	// Now is the wall clock, for the rule that refuses to close the
	// current month (default time.Now).
	Now func() time.Time
	// NoMigrate opens a ledger without creating or upgrading its schema:
	// a database without the ledger's current schema is an error
	// (ErrNoSchema). Readers use it, so that a report pointed at the wrong
	// database says so instead of creating tables there.
	NoMigrate bool
}

// Store is the ledger in one PostgreSQL database. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
	url  string
	log  *slog.Logger
	now  func() time.Time
	// bulk says when ApplyWindow takes its bulk paths (defaultBulk;
	// tests change it).
	bulk bulkThresholds
}

// Open connects to the database at url (a PostgreSQL URL or key=value
// string), applies the embedded migrations that are missing, and returns
// the store. A database that cannot be reached gives an error for which
// IsTransient is true.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	// Day and month boundaries are UTC whatever the server's default.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	s := &Store{pool: pool, url: url, log: opts.Logger, now: opts.Now, bulk: defaultBulk}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	migrate := s.migrate
	if opts.NoMigrate {
		migrate = s.checkSchema
	}
	if err := migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store's connections. Locks taken with TryLock have
// their own connections and are released separately.
func (s *Store) Close() { s.pool.Close() }

// Pool returns the store's connection pool, for readers that query the
// ledger's tables directly (the accounting API, dashboards' tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Advisory lock keys: the first of the two int4 keys says what is locked.
const (
	lockMigrate = 0x67706c00 + iota // migrations (second key 0)
	lockWriter                      // the writer of a cluster (session level)
	lockApply                       // one ApplyWindow or CloseMonth per cluster at a time (transaction level)
)

// clusterKey is the second advisory lock key of a cluster: its FNV-1a hash.
func clusterKey(cluster string) int32 {
	h := uint32(2166136261)
	for i := 0; i < len(cluster); i++ {
		h ^= uint32(cluster[i])
		h *= 16777619
	}
	return int32(h)
}
