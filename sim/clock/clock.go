// Package clock is the simulator's notion of time. Real exporters read the
// wall clock; simulated ones read a Clock, so that a month of a scenario can
// be served in seconds: a Virtual clock runs from a scenario instant at a
// chosen speed, and a Manual clock moves only when told (tests, replay).
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Wall is the real clock.
type Wall struct{}

// Now returns time.Now().
func (Wall) Now() time.Time { return time.Now() }

// Virtual maps wall time to scenario time: it reads Origin at the moment it
// was created and advances Speed scenario seconds per wall second.
type Virtual struct {
	origin time.Time
	speed  float64
	wall0  time.Time
	now    func() time.Time
}

// NewVirtual starts a virtual clock at origin running speed times faster
// than the wall clock (speed 1 is real time, 3600 an hour per second).
func NewVirtual(origin time.Time, speed float64) *Virtual {
	return newVirtual(origin, speed, time.Now)
}

func newVirtual(origin time.Time, speed float64, now func() time.Time) *Virtual {
	if speed <= 0 {
		speed = 1
	}
	return &Virtual{origin: origin, speed: speed, wall0: now(), now: now}
}

// Now returns the scenario time, truncated to the millisecond.
func (v *Virtual) Now() time.Time {
	elapsed := float64(v.now().Sub(v.wall0)) * v.speed
	return v.origin.Add(time.Duration(elapsed)).Truncate(time.Millisecond)
}

// Manual is a clock set by its owner. The zero value reads the zero time.
type Manual struct {
	mu sync.Mutex
	t  time.Time
}

// NewManual returns a manual clock reading t.
func NewManual(t time.Time) *Manual { return &Manual{t: t} }

// Now returns the time last set.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

// Set moves the clock to t (backwards too).
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	m.t = t
	m.mu.Unlock()
}

// Advance moves the clock forward by d and returns the new time.
func (m *Manual) Advance(d time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t = m.t.Add(d)
	return m.t
}

// Fixed is a clock stopped at one instant.
type Fixed time.Time

// Now returns the instant.
func (f Fixed) Now() time.Time { return time.Time(f) }
