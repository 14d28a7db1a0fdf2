//go:build ignore

// Command gen writes prometheusrule.yaml: the rules of gpuledger-rules.yaml
// as a Prometheus Operator PrometheusRule. Run it with go generate ./alerts;
// TestPrometheusRuleUpToDate fails when the committed file drifts.
package main

import (
	"fmt"
	"os"

	"github.com/gpuledger/gpuledger/alerts"
)

func main() {
	if err := run("prometheusrule.yaml"); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	f, err := alerts.Load()
	if err != nil {
		return err
	}
	out, err := alerts.PrometheusRule(f)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
