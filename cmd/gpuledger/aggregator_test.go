package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestAggregatorFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no database", []string{"--cluster", "c", "--targets", "a:1"}, "--database-url"},
		{"no cluster", []string{"--database-url", "postgres://x", "--targets", "a:1"}, "--cluster is required"},
		{"no source", []string{"--database-url", "postgres://x", "--cluster", "c"}, "give exporters to scrape"},
		{"two sources", []string{"--database-url", "postgres://x", "--cluster", "c", "--targets", "a:1", "--prometheus-url", "http://p"}, "exclude each other"},
		{"backfill without prometheus", []string{"--database-url", "postgres://x", "--cluster", "c", "--targets", "a:1", "--from", "2026-11-01T00:00:00Z"}, "--prometheus-url"},
		{"to without from", []string{"--database-url", "postgres://x", "--cluster", "c", "--prometheus-url", "http://p", "--to", "2026-11-01T00:00:00Z"}, "--to needs --from"},
		{"negative delay", []string{"--database-url", "postgres://x", "--cluster", "c", "--prometheus-url", "http://p", "--prometheus-delay", "-1m"}, "--prometheus-delay"},
		{"bad time", []string{"--database-url", "postgres://x", "--cluster", "c", "--targets", "a:1", "--until", "yesterday"}, "RFC 3339"},
		{"reversed range", []string{"--database-url", "postgres://x", "--cluster", "c", "--prometheus-url", "http://p", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-01T00:00:00Z"}, "not after"},
		{"bad window", []string{"--database-url", "postgres://x", "--cluster", "c", "--targets", "a:1", "--window", "7m"}, "divide an hour"},
		{"negative interval", []string{"--database-url", "postgres://x", "--cluster", "c", "--targets", "a:1", "--interval", "-1s"}, "must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DATABASE_URL", "")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"aggregator"}, c.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), c.want)
			}
		})
	}
}
