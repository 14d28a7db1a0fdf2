package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// RangeSource reads what the exporters served during a closed range
// (aggregator/source.Prometheus).
type RangeSource interface {
	Fetch(ctx context.Context, from, to time.Time) ([]observe.Scrape, error)
}

// Backfill reads [from, to) from a range source chunk by chunk, feeds the
// reconstruction, and writes every window up to to. Windows the ledger
// refuses for a transient reason are retried with backoff; a range the
// source cannot read is an error (a source error that still carries scrapes,
// such as series dropped for bad values, is logged and the scrapes used).
func (l *Loop) Backfill(ctx context.Context, src RangeSource, from, to time.Time, chunk time.Duration) error {
	if !from.Before(to) {
		return fmt.Errorf("aggregator: backfill range [%s, %s) is empty", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if chunk <= 0 {
		chunk = time.Hour
	}
	for a := from; a.Before(to); a = a.Add(chunk) {
		b := a.Add(chunk)
		if b.After(to) {
			b = to
		}
		fetchTo := b
		if !b.Before(to) {
			// A scrape taken exactly at the end still belongs to the last
			// window (aggregator/intervals): read it too.
			fetchTo = to.Add(time.Second)
		}
		scrapes, err := src.Fetch(ctx, a, fetchTo)
		if err != nil {
			if len(scrapes) == 0 {
				return fmt.Errorf("aggregator: backfill %s to %s: %w", a.Format(time.RFC3339), b.Format(time.RFC3339), err)
			}
			l.logger.Warn("backfill: some series were dropped", "from", a, "to", b, "err", err)
		}
		for _, s := range scrapes {
			if s.OK {
				l.m.scrapes.WithLabelValues("ok").Inc()
			} else {
				l.m.scrapes.WithLabelValues("failed").Inc()
			}
			l.rec.Observe(s)
			l.observeQuotas(s)
		}
		upTo := b.Unix() - b.Unix()%int64(l.cfg.Window/time.Second)
		if !b.Before(to) {
			upTo = to.Unix()
		}
		l.pending = append(l.pending, l.rec.Close(upTo)...)
		if err := l.drain(ctx, true); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
	}
	return nil
}
