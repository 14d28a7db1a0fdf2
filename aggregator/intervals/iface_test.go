package intervals_test

import (
	"testing"

	"github.com/gpuledger/gpuledger/aggregator"
	"github.com/gpuledger/gpuledger/aggregator/intervals"
)

// TestLoopInterface: the aggregator's loop drives a Reconstructor through
// its interface.
func TestLoopInterface(t *testing.T) {
	r, err := intervals.New(intervals.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var rec aggregator.Reconstructor = r
	if ws := rec.Close(1); ws != nil {
		t.Errorf("windows from an empty reconstructor: %v", ws)
	}
}
