package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsTransient reports whether err is worth retrying: the database could
// not be reached or went away (connection refused or reset, the server
// shutting down, starting up or out of connections), or a transaction
// lost a serialization or deadlock race. A transaction that failed this
// way was rolled back whole: retrying it cannot count anything twice.
// Context cancellation and deadlines are not transient: the caller gave up.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"53300", // too_many_connections
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now
			return true
		}
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08" // connection_exception
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr),
		errors.Is(err, pgconn.ErrConnClosed),
		pgconn.SafeToRetry(err),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr):
		return true
	}
	return false
}

// Backoff is how Retry waits between attempts: Initial, doubling up to
// Max, for at most MaxElapsed in all (0: until the context ends).
type Backoff struct {
	Initial, Max time.Duration
	MaxElapsed   time.Duration
}

// DefaultBackoff waits 100 ms, then 200 ms, … up to 5 s between attempts.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// ErrGaveUp wraps the last error of a Retry that ran out of time.
var ErrGaveUp = errors.New("gave up retrying")

// Retry calls fn until it returns nil or an error that is not transient,
// or until ctx ends or b.MaxElapsed has passed, waiting between attempts
// as b says. Each transient failure is logged with what. When Retry gives
// up, its error wraps ErrGaveUp and the last error (and ctx's error when
// ctx ended); it is no longer transient.
func Retry(ctx context.Context, b Backoff, log *slog.Logger, what string, fn func(context.Context) error) error {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max < b.Initial {
		b.Max = max(DefaultBackoff.Max, b.Initial)
	}
	start := time.Now()
	wait := b.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !IsTransient(err) {
			return err
		}
		if b.MaxElapsed > 0 && time.Since(start)+wait > b.MaxElapsed {
			return fmt.Errorf("%s: %w after %d attempts in %s: %v", what, ErrGaveUp, attempt,
				time.Since(start).Round(time.Millisecond), err)
		}
		if log != nil {
			log.Warn("database unavailable, retrying", "what", what, "attempt", attempt, "in", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w after %d attempts: %w (last error: %v)", what, ErrGaveUp, attempt, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}
