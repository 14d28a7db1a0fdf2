package source

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// TestMalformedAllocationIsUnknown: an allocation whose start is NaN is
// dropped from Allocs but listed in Unknown, so that the reconstruction
// does not take it for ended.
func TestMalformedAllocationIsUnknown(t *testing.T) {
	const lbl = `{class="gpu",device="GPU-1",gpu="0",gpu_uuid="GPU-1",model="m",namespace="ns",node="n1",pod="p",pod_uid="u1",profile="",project="pr",queue="",resource="nvidia.com/gpu",site="",user="us"}`
	const lbl2 = `{class="gpu",device="GPU-2",gpu="1",gpu_uuid="GPU-2",model="m",namespace="ns",node="n1",pod="p2",pod_uid="u2",profile="",project="pr",queue="",resource="nvidia.com/gpu",site="",user="us"}`
	body := "gpuledger_allocation_start_time_seconds" + lbl + " NaN\n" +
		"gpuledger_allocation_weight_ratio" + lbl + " 1\n" +
		"gpuledger_allocation_devices" + lbl + " 1\n" +
		"gpuledger_allocation_start_time_seconds" + lbl2 + " 1793600000\n" +
		"gpuledger_allocation_weight_ratio" + lbl2 + " 1\n" +
		"gpuledger_allocation_devices" + lbl2 + " 1\n"
	sc, err := ParseText("n1", strings.NewReader(body), time.Unix(1793600100, 0))
	var se *SeriesError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want a *SeriesError", err)
	}
	want := observe.AllocKey{Node: "n1", Device: "GPU-1", PodUID: "u1", Resource: "nvidia.com/gpu"}
	if len(sc.Unknown) != 1 || sc.Unknown[0] != want {
		t.Errorf("Unknown %+v, want [%+v]", sc.Unknown, want)
	}
	if len(sc.Allocs) != 1 || sc.Allocs[0].PodUID != "u2" {
		t.Errorf("Allocs %+v, want only the readable allocation", sc.Allocs)
	}
}
