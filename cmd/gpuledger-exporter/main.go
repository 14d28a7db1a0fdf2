// Command gpuledger-exporter is gpuledger's exporter alone: the flags and
// behaviour of `gpuledger exporter` (exporters/cli), in a binary that
// links none of the aggregator, the API, the ledger or the dashboards. It
// is smaller, so its resident memory on every node is smaller
// (docs/performance.md, P1 on the real code path).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gpuledger/gpuledger/exporters/cli"
)

const name = "gpuledger-exporter"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.ExitCode(name, cli.Run(ctx, name, os.Args[1:], os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}
