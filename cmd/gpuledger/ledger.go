package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// cmdLedgerClose makes a month of a cluster's ledger immutable.
func cmdLedgerClose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ledger close", stderr)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL `URL` of the ledger (default $DATABASE_URL)")
	cluster := fs.String("cluster", "", "the `cluster` whose month to close (required)")
	monthFlag := fs.String("month", "", "the `month` to close, YYYY-MM (UTC; required)")
	wait := fs.Duration("wait", defaultDBWait, "how long to retry a database that is down or restarting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *dbURL == "":
		return usagef("--database-url is required (or set DATABASE_URL)")
	case *cluster == "":
		return usagef("--cluster is required")
	case *monthFlag == "":
		return usagef("--month is required (YYYY-MM)")
	}
	month, err := time.Parse("2006-01", *monthFlag)
	if err != nil {
		return usagef("--month %q: want YYYY-MM, such as 2026-10", *monthFlag)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := openLedger(ctx, *dbURL, *wait, log)
	if err != nil {
		return err
	}
	defer store.Close()
	err = retryUntil(ctx, *wait, log, "close month", func(ctx context.Context) error {
		return store.CloseMonth(ctx, *cluster, month)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "closed %s of cluster %s: its rows are now immutable; later corrections go to ledger_adjustments\n",
		month.Format("2006-01"), *cluster)
	return nil
}
