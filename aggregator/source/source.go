// Package source is where the aggregator's data comes from: what the
// gpuledger exporters served, as observe.Scrapes in time order.
//
// Two kinds of source exist. A Scraper reads the exporters' /metrics
// endpoints itself, on the aggregator's clock (small sites without
// Prometheus, and the replay); its targets come from a Discoverer (a static
// list, a Prometheus file_sd file, and later the endpoints of the
// exporters' Kubernetes Service). A Source reads a closed time range after
// the fact: Prometheus (or Thanos, or Mimir) through its HTTP API, which is
// also how a past range is backfilled.
//
// Both turn expositions into Scrapes through one conversion (ParseFamilies,
// ParseText; docs/sources.md): weights in milli-GPU, starts and ends in
// whole seconds, energy in millijoules, activity in thousandths. A
// malformed series is dropped with an error naming it (*SeriesError) and
// the rest of the scrape is kept.
package source

import (
	"context"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// Source reads what the exporters served during a closed range of time.
type Source interface {
	// Fetch returns the scrapes whose time lies in [from, to), in time
	// order (then by target). An error that is a *SeriesError comes with
	// usable scrapes: only the series it names were dropped. Any other
	// error means the range could not be read and no scrapes are returned.
	Fetch(ctx context.Context, from, to time.Time) ([]observe.Scrape, error)
}

// Why a scrape failed or was incomplete: short, fixed strings, fit for a
// metric label (the aggregator counts failures by reason).
const (
	// ReasonUnreachable: no connection (refused, no route, DNS).
	ReasonUnreachable = "unreachable"
	// ReasonTimeout: no complete answer within the per-target timeout.
	ReasonTimeout = "timeout"
	// ReasonHTTPStatus: an answer other than 200 (a simulated fault is a
	// 503).
	ReasonHTTPStatus = "http_status"
	// ReasonBadBody: the body is not an exposition.
	ReasonBadBody = "bad_body"
	// ReasonTooLarge: the body exceeds the size limit.
	ReasonTooLarge = "too_large"
	// ReasonCanceled: the aggregator stopped the scrape.
	ReasonCanceled = "canceled"
	// ReasonDroppedSeries: the scrape succeeded but some series were
	// malformed and dropped (Result.Dropped says how many).
	ReasonDroppedSeries = "dropped_series"
)

// Reasons lists every reason, for metrics that initialise one series per
// reason.
func Reasons() []string {
	return []string{ReasonUnreachable, ReasonTimeout, ReasonHTTPStatus, ReasonBadBody, ReasonTooLarge,
		ReasonCanceled, ReasonDroppedSeries}
}
