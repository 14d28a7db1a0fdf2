package main

import (
	"context"
	"fmt"
	"io"

	"github.com/gpuledger/gpuledger/dashboards"
)

// cmdDashboards writes the Grafana dashboards, one JSON file per dashboard.
func cmdDashboards(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dashboards", stderr)
	out := fs.String("out", "", "`directory` to write the dashboards into, created if needed")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: gpuledger dashboards --out DIR

Write gpuledger's Grafana dashboards (classic JSON model, one <uid>.json per
dashboard) into DIR: cluster overview, project accounting, user, device health,
FPGAs and gpuledger's own health. They select their Prometheus and PostgreSQL
(ledger) data sources through variables; docs/dashboards.md says how to load
them (provisioning, or ConfigMaps for the Grafana sidecar).

Flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	paths, err := dashboards.Write(*out)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if _, err := fmt.Fprintln(stdout, p); err != nil {
			return err
		}
	}
	return nil
}
