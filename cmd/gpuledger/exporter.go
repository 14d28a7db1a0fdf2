package main

import (
	"context"
	"errors"
	"io"

	"github.com/gpuledger/gpuledger/exporters/cli"
)

// cmdExporter is the exporter; gpuledger-exporter runs the same code
// (exporters/cli) without the rest of the suite.
func cmdExporter(ctx context.Context, args []string, _, stderr io.Writer) error {
	err := cli.Run(ctx, "gpuledger exporter", args, stderr)
	if errors.Is(err, cli.ErrUsage) {
		return usageError{err}
	}
	return err
}
