package kube

import (
	"log/slog"
	"sync"
	"time"
)

// health tracks whether the API server answers, from the informers' watch
// errors and the probes that follow them.
type health struct {
	log     *slog.Logger
	mu      sync.Mutex
	down    bool
	lastErr time.Time // the last failure seen
}

// failed records a failure; the first of an outage is logged.
func (h *health) failed(what string, err error, now time.Time) {
	h.mu.Lock()
	was := h.down
	h.down, h.lastErr = true, now
	h.mu.Unlock()
	if !was {
		h.log.Error("Kubernetes API unreachable: pod metadata and attribution are stale until it answers again",
			"informer", what, "err", err)
	}
}

// probed records a probe of an unreachable API server. It is back when
// the probe answered and no informer failed for quiet.
func (h *health) probed(err error, now time.Time, quiet time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return
	}
	if err != nil {
		h.lastErr = now
		h.log.Debug("Kubernetes API still unreachable", "err", err)
		return
	}
	if now.Sub(h.lastErr) < quiet {
		return
	}
	h.down = false
	h.log.Info("Kubernetes API answers again", "down_since_last_error", h.lastErr.UTC().Format(time.RFC3339))
}

func (h *health) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// onceLog logs each message key once. It forgets everything past
// maxOnceKeys keys, so that varying messages cannot grow it without bound.
type onceLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]bool
}

const maxOnceKeys = 1024

func (o *onceLog) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[key] {
		return false
	}
	if o.seen == nil || len(o.seen) >= maxOnceKeys {
		o.seen = map[string]bool{}
	}
	o.seen[key] = true
	return true
}

func (o *onceLog) warn(key, msg string, args ...any) {
	if o.first(key) {
		o.log.Warn(msg, args...)
	}
}

func (o *onceLog) info(key, msg string, args ...any) {
	if o.first(key) {
		o.log.Info(msg, args...)
	}
}
