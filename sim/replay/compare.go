package replay

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// Diff is one group's allocated milli-GPU-seconds in the ground truth and
// in the ledger.
type Diff struct {
	Keys   []string
	Truth  int64
	Ledger int64
}

// Comparison is the ledger checked against the scenario's ground truth.
type Comparison struct {
	GroupBy            []string
	Rows               []Diff // every group of either side, sorted by keys
	Truth, Ledger      int64  // totals
	TruthFPGA, LedgerF int64  // FPGA seconds
}

// Exact reports whether every group matches to the milli-GPU-second and
// FPGA seconds match.
func (c *Comparison) Exact() bool {
	for _, r := range c.Rows {
		if r.Truth != r.Ledger {
			return false
		}
	}
	return c.TruthFPGA == c.LedgerF
}

// Compare reads the ledger's allocated GPU time over [from, to) grouped by
// groupBy (keys both sim truth and the ledger know) and sets it beside the
// scenario's ground truth.
func Compare(ctx context.Context, store *ledger.Store, s *scenario.Scenario, from, to time.Time, groupBy []string) (*Comparison, error) {
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		return nil, err
	}
	tr, err := truth.Compute(allocs, from, to, groupBy)
	if err != nil {
		return nil, err
	}
	c := &Comparison{GroupBy: groupBy}
	rows := map[string]*Diff{}
	get := func(keys []string) *Diff {
		id := strings.Join(keys, "\x00")
		d, ok := rows[id]
		if !ok {
			d = &Diff{Keys: append([]string(nil), keys...)}
			rows[id] = d
		}
		return d
	}
	for _, r := range tr.Rows {
		get(r.Keys).Truth += r.AllocatedMilliGPUSeconds
		c.Truth += r.AllocatedMilliGPUSeconds
		c.TruthFPGA += r.FPGASeconds
	}
	err = store.Report(ctx, ledger.ReportQuery{Cluster: s.Cluster, From: from, To: to, GroupBy: groupBy},
		func(r ledger.ReportRow) error {
			get(r.Keys).Ledger += r.AllocatedMilliGPUSeconds
			c.Ledger += r.AllocatedMilliGPUSeconds
			c.LedgerF += r.FPGASeconds
			return nil
		})
	if err != nil {
		return nil, err
	}
	for _, d := range rows {
		if d.Truth != 0 || d.Ledger != 0 {
			c.Rows = append(c.Rows, *d)
		}
	}
	sort.Slice(c.Rows, func(i, j int) bool {
		return strings.Join(c.Rows[i].Keys, "\x00") < strings.Join(c.Rows[j].Keys, "\x00")
	})
	return c, nil
}
