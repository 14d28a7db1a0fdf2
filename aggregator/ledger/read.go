package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// ClosedMonths returns the closed months of cluster, in order.
func (s *Store) ClosedMonths(ctx context.Context, cluster string) ([]time.Time, error) {
	rows, err := s.pool.Query(ctx, "SELECT month FROM closed_months WHERE cluster = $1 ORDER BY month", cluster)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (time.Time, error) {
		var t time.Time
		err := r.Scan(&t)
		return t.UTC(), err
	})
	if err != nil {
		return nil, fmt.Errorf("closed months of cluster %q: %w", cluster, err)
	}
	return out, nil
}

// Watermark returns the end of the latest window applied for cluster, and
// false when none was.
func (s *Store) Watermark(ctx context.Context, cluster string) (time.Time, bool, error) {
	var wm int64
	err := s.pool.QueryRow(ctx, "SELECT watermark_unix FROM watermarks WHERE cluster = $1", cluster).Scan(&wm)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("watermark of cluster %q: %w", cluster, err)
	}
	return time.Unix(wm, 0).UTC(), true, nil
}

// OpenIntervals returns the intervals of cluster still open in the ledger
// (no end known yet), in key order. An aggregator that restarts seeds its
// interval reconstruction with them, so that an allocation that ended
// while it was down is closed (at its exact end, or inferred from when it
// was last seen) instead of running on to every later watermark.
func (s *Store) OpenIntervals(ctx context.Context, cluster string) ([]observe.Interval, error) {
	rows, err := s.pool.Query(ctx, `SELECT node, device, pod_uid, resource, class, gpu_uuid, model, profile,
		namespace, pod, user_name, project, queue, site, start_unix, last_seen_unix_ms, weight_milli, devices
		FROM intervals WHERE cluster = $1 AND end_unix IS NULL
		ORDER BY node, device, pod_uid, resource`, cluster)
	if err != nil {
		return nil, fmt.Errorf("open intervals of cluster %q: %w", cluster, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (observe.Interval, error) {
		var x observe.Interval
		err := r.Scan(&x.Node, &x.Device, &x.PodUID, &x.Resource, &x.Class, &x.GPUUUID, &x.Model, &x.Profile,
			&x.Namespace, &x.Pod, &x.User, &x.Project, &x.Queue, &x.Site, &x.Start, &x.LastSeen, &x.WeightMilli, &x.Devices)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("open intervals of cluster %q: %w", cluster, err)
	}
	return out, nil
}
