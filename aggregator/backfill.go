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
		if err := l.readRange(ctx, src, a, b, !b.Before(to)); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
	}
	return nil
}

// readRange reads [a, b) from src, feeds the reconstruction and writes the
// windows it closes: those ending at or before b, and, when last, the one
// ending at b with the scrapes taken exactly at b (which otherwise open
// the next range).
func (l *Loop) readRange(ctx context.Context, src RangeSource, a, b time.Time, last bool) error {
	fetchTo := b
	if last {
		// A scrape taken exactly at the end still belongs to the last
		// window (aggregator/intervals): read it too.
		fetchTo = b.Add(time.Second)
	}
	if err := l.read(ctx, src, a, fetchTo); err != nil {
		return err
	}
	upTo := b.Unix() - b.Unix()%int64(l.cfg.Window/time.Second)
	if last {
		upTo = b.Unix()
	}
	return l.closeAndWrite(ctx, upTo)
}

// closeAndWrite closes the windows ending at or before upTo (Unix seconds)
// and writes every queued window, retrying the ledger's transient errors.
func (l *Loop) closeAndWrite(ctx context.Context, upTo int64) error {
	l.pending = append(l.pending, l.rec.Close(upTo)...)
	return l.drain(ctx, true)
}

// read fetches [a, b) from src and feeds the reconstruction.
func (l *Loop) read(ctx context.Context, src RangeSource, a, b time.Time) error {
	scrapes, err := src.Fetch(ctx, a, b)
	if err != nil {
		if len(scrapes) == 0 {
			return fmt.Errorf("aggregator: read %s to %s: %w", a.Format(time.RFC3339), b.Format(time.RFC3339), err)
		}
		l.logger.Warn("some series were dropped", "from", a, "to", b, "err", err)
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
	return nil
}

// FollowOptions tune Follow.
type FollowOptions struct {
	// Chunk is the longest range one read covers (default an hour).
	Chunk time.Duration
	// Delay is how long after a window's end, by the clock of Now, it is
	// read: the source's scrape interval and its ingestion delay (a
	// Prometheus behind a remote-write queue, Thanos' upload). Scrapes the
	// source gets later than that are late data.
	Delay time.Duration
	// Now is the clock (default time.Now); Sleep waits d or until ctx ends,
	// saying whether the wait was whole (default a timer).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) bool
}

// Follow reads a range source as time passes, as the loop reads live
// exporters: from from, every window, what the source holds up to Delay
// ago, in chunks of at most Chunk, and closes the windows that ended
// Config.Lag before the last scrape read — so that a window is closed
// knowing what the scrapes just after it show (an allocation that ended
// in it, seen by a scrape after a failed one). A read that fails is
// logged and tried again at the next window, from where it failed; the
// ledger's transient errors are retried with backoff. It returns when ctx
// ends, or, with Config.Until, once every window up to Until is written.
func (l *Loop) Follow(ctx context.Context, src RangeSource, from time.Time, opts FollowOptions) error {
	if opts.Chunk <= 0 {
		opts.Chunk = time.Hour
	}
	if opts.Delay < 0 {
		return errors.New("aggregator: negative follow delay")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
				return true
			}
		}
	}
	win := l.cfg.Window
	cursor := from.UTC().Truncate(win) // read up to here
	var until time.Time
	if l.cfg.Until > 0 {
		until = time.Unix(l.cfg.Until, 0).UTC()
	}
	for {
		readTo := opts.Now().UTC().Add(-opts.Delay).Truncate(time.Second)
		if !until.IsZero() && readTo.After(until.Add(l.cfg.Lag)) {
			// Past Until only as far as closing it needs.
			readTo = until.Add(l.cfg.Lag).Add(time.Second)
		}
		for cursor.Before(readTo) {
			b := cursor.Add(opts.Chunk)
			if b.After(readTo) {
				b = readTo
			}
			if err := l.read(ctx, src, cursor, b); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				l.logger.Warn("reading the source failed; trying again at the next window", "from", cursor, "to", b, "err", err)
				break
			}
			cursor = b
			closeTo := cursor.Add(-l.cfg.Lag).Unix()
			if !until.IsZero() {
				closeTo = min(closeTo, until.Unix())
			}
			if err := l.closeAndWrite(ctx, closeTo); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		// Done once everything up to Until is written, or, if the source
		// held nothing, read.
		if !until.IsZero() && (l.written() >= until.Unix() || !cursor.Before(until.Add(l.cfg.Lag)) && len(l.pending) == 0) {
			return nil
		}
		next := opts.Now().Truncate(win).Add(win).Add(opts.Delay)
		if !opts.Sleep(ctx, max(next.Sub(opts.Now()), time.Second)) {
			return nil
		}
	}
}
