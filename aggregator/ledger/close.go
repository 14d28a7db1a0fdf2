package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrAlreadyClosed is a month closed before.
var ErrAlreadyClosed = errors.New("month already closed")

// CloseMonth makes the UTC month holding month immutable for cluster: its
// hourly, daily, monthly and capacity rows are never rewritten again, and
// later data for its hours is written to ledger_adjustments. A month can
// be closed once it has ended (by the store's clock) and the cluster's
// watermark has reached its end; otherwise the error wraps
// ErrCannotClose. Closing a closed month fails with ErrAlreadyClosed.
func (s *Store) CloseMonth(ctx context.Context, cluster string, month time.Time) error {
	start := utcMonth(month)
	end := start.AddDate(0, 1, 0)
	name := start.Format("2006-01")
	if now := s.now(); end.After(now) {
		return fmt.Errorf("%w: %s has not ended (now %s)", ErrCannotClose, name, now.UTC().Format(time.RFC3339))
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The lock ApplyWindow holds: no window is half-way through the month's hours.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockApply, clusterKey(cluster)); err != nil {
			return err
		}
		var wm int64
		switch err := tx.QueryRow(ctx, "SELECT watermark_unix FROM watermarks WHERE cluster = $1", cluster).Scan(&wm); {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%w: cluster %q has no data in the ledger", ErrCannotClose, cluster)
		case err != nil:
			return err
		}
		if wm < end.Unix() {
			return fmt.Errorf("%w: %s ends %s but the ledger of cluster %q is complete only up to %s",
				ErrCannotClose, name, end.Format(time.RFC3339), cluster, time.Unix(wm, 0).UTC().Format(time.RFC3339))
		}
		var closedAt time.Time
		err := tx.QueryRow(ctx, `INSERT INTO closed_months (cluster, month, watermark_unix) VALUES ($1, $2, $3)
			ON CONFLICT (cluster, month) DO NOTHING RETURNING closed_at`, cluster, start, wm).Scan(&closedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			if err := tx.QueryRow(ctx, "SELECT closed_at FROM closed_months WHERE cluster = $1 AND month = $2",
				cluster, start).Scan(&closedAt); err != nil {
				return err
			}
			return fmt.Errorf("%w: %s of cluster %q, at %s", ErrAlreadyClosed, name, cluster, closedAt.UTC().Format(time.RFC3339))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("close %s of cluster %q: %w", name, cluster, err)
	}
	s.log.Info("month closed", "cluster", cluster, "month", name)
	return nil
}
