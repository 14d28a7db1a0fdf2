package ledger

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/internal/pgtest"
)

func TestP2TmpProfile(t *testing.T) {
	in, skip, err := loadP2()
	if skip != "" || err != nil {
		t.Fatal(skip, err)
	}
	s := in.scenario
	w := observe.Window{Cluster: s.Cluster, From: s.Start.Unix(), To: s.End.Unix(), Intervals: in.intervals}
	ctx := context.Background()
	u := pgtest.New(t)
	if v := os.Getenv("P2_SCRATCH_URL"); v != "" {
		u = v
	}
	pu, _ := url.Parse(u)
	db := strings.TrimPrefix(pu.Path, "/")
	if os.Getenv("P2_EXPLAIN") != "" {
		c, err := pgx.Connect(ctx, pgtest.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"session_preload_libraries = 'auto_explain'", "auto_explain.log_min_duration = 0",
			"auto_explain.log_analyze = on", "auto_explain.log_buffers = on", "auto_explain.log_nested_statements = on", "auto_explain.log_timing = on"} {
			if _, err := c.Exec(ctx, "ALTER DATABASE "+db+" SET "+q); err != nil {
				t.Fatal(err)
			}
		}
		c.Close(ctx)
	}
	store, err := Open(ctx, u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := 0; i < 3; i++ {
		start := time.Now()
		if err := store.ApplyWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
		t.Logf("db %s took %s", db, time.Since(start))
		if os.Getenv("P2_ONCE") != "" {
			break
		}
	}
}

func TestP2TmpDumpSQL(t *testing.T) {
	r := strings.NewReplacer("$1", "'alibaba-v2023'::text", "$2::bigint[]", "array[1767225600]::bigint[]", "$3::bigint[]", "array[1780131600]::bigint[]", "$4::bigint", "1780128560::bigint",
		"$2::timestamptz[]", "array[to_timestamp(1767225600)]", "$3::timestamptz[]", "array[to_timestamp(1780131600)]")
	os.WriteFile("/tmp/p2_recompute.sql", []byte(r.Replace(recomputeSQL)), 0o644)
	os.WriteFile("/tmp/p2_daily.sql", []byte(r.Replace(dailySQL)), 0o644)
	os.WriteFile("/tmp/p2_monthly.sql", []byte(r.Replace(monthlySQL)), 0o644)
	os.WriteFile("/tmp/p2_keys.txt", []byte(keyCols+"\n"+valCols), 0o644)
}
