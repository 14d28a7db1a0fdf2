package source

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestZZMeasureFetch(t *testing.T) {
	url := os.Getenv("PROM_URL")
	if url == "" {
		t.Skip()
	}
	p, err := NewPrometheus(PrometheusOptions{URL: url, Job: "gpuledger-exporter"})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	total, allocs := 0, 0
	begin := time.Now()
	for d := 0; d < 30; d++ {
		sc, err := p.Fetch(context.Background(), from.AddDate(0, 0, d), from.AddDate(0, 0, d+1))
		if err != nil {
			t.Fatal(err)
		}
		total += len(sc)
		for _, s := range sc {
			allocs += len(s.Allocs)
		}
	}
	t.Logf("month by day: %d scrapes, %d allocation observations in %s", total, allocs, time.Since(begin))
}
