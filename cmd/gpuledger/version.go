package main

import (
	"context"
	"fmt"
	"io"

	"github.com/prometheus/common/version"
)

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, version.Print("gpuledger"))
	return err
}
