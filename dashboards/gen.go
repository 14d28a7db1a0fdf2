//go:build ignore

// Command gen writes every dashboard's JSON into generated/. Run it with
// go generate ./dashboards (or gpuledger dashboards --out dashboards/generated);
// TestGeneratedUpToDate fails when the committed files drift.
package main

import (
	"fmt"
	"os"

	"github.com/gpuledger/gpuledger/dashboards"
)

func main() {
	if _, err := dashboards.Write(dashboards.GeneratedDir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
