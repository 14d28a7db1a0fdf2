package clock

import (
	"testing"
	"time"
)

func TestVirtual(t *testing.T) {
	origin := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v := newVirtual(origin, 3600, func() time.Time { return wall })
	if got := v.Now(); !got.Equal(origin) {
		t.Fatalf("at start: %s, want %s", got, origin)
	}
	wall = wall.Add(2 * time.Second)
	if got, want := v.Now(), origin.Add(2*time.Hour); !got.Equal(want) {
		t.Fatalf("after 2 s at 3600x: %s, want %s", got, want)
	}
	if got := newVirtual(origin, 0, func() time.Time { return wall }).speed; got != 1 {
		t.Fatalf("speed 0 became %v, want 1", got)
	}
}

func TestManual(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	m := NewManual(t0)
	if got := m.Advance(15 * time.Second); !got.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("Advance: %s", got)
	}
	m.Set(t0)
	if !m.Now().Equal(t0) {
		t.Fatalf("Set backwards: %s", m.Now())
	}
	if !Fixed(t0).Now().Equal(t0) {
		t.Fatal("Fixed")
	}
}
