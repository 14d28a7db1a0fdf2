// Package truth computes the exact usage a scenario implies over a window:
// the ground truth the ledger must reproduce. It is pure arithmetic on the
// scenario's allocations, in integers:
//
//   - allocated milli-GPU-seconds: weight (milli-GPU) × seconds of the
//     allocation inside the window, for GPUs, MIG slices, shared fractions
//     and offloaded GPUs. FPGA cards are not GPU-hours and add nothing here.
//   - device-seconds: raw GPU devices held (1 per device, or the count
//     requested on a virtual node) × seconds, unweighted; FPGAs excluded.
//   - FPGA seconds: FPGA cards held × seconds.
//
// An allocation counts over [max(start, from), min(end, to)); an open
// allocation (a pod still running at the end of the scenario) runs to the
// end of the window. Times are whole seconds, so every sum is an integer.
package truth

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/internal/tabular"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Group-by keys.
const (
	KeyProject   = "project"
	KeyUser      = "user"
	KeyNamespace = "namespace"
	KeyResource  = "resource" // the class: gpu, mig, shared, fpga, offload
	KeyModel     = "model"
	KeySite      = "site"
	KeyNode      = "node"
	KeyPod       = "pod" // namespace/name
	KeyQueue     = "queue"
	KeyProfile   = "profile" // MIG profile
)

var keys = []string{KeyProject, KeyUser, KeyNamespace, KeyResource, KeyModel, KeySite, KeyNode, KeyPod, KeyQueue, KeyProfile}

// Keys returns the group-by keys Compute knows.
func Keys() []string { return slices.Clone(keys) }

// Errors of Compute and ParseGroupBy.
var (
	ErrUnknownKey = errors.New("unknown group-by key")
	ErrWindow     = errors.New("bad window")
	ErrOverflow   = errors.New("sum overflows 64 bits")
)

// ParseGroupBy parses a comma-separated list of group-by keys
// ("project,user"). Spaces around keys are ignored; an empty list groups
// everything into one row.
func ParseGroupBy(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(k))
	}
	if err := checkKeys(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkKeys(groupBy []string) error {
	for i, k := range groupBy {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("%w %q (known: %s)", ErrUnknownKey, k, strings.Join(keys, ", "))
		}
		if slices.Contains(groupBy[:i], k) {
			return fmt.Errorf("group-by key %q given twice", k)
		}
	}
	return nil
}

// Row is the usage of one group.
type Row struct {
	// Keys are the group's values, in the order of the report's GroupBy.
	// A value the allocation does not have (the site of a local node, the
	// queue of a pod outside Kueue, the profile of a whole GPU) is "".
	Keys                     []string
	AllocatedMilliGPUSeconds int64
	DeviceSeconds            int64
	FPGASeconds              int64
}

// Report is the ground truth over a window.
type Report struct {
	From, To time.Time
	GroupBy  []string
	Rows     []Row // sorted by Keys; groups with no time in the window are absent
}

// Compute sums allocations over [from, to) by the group-by keys. from and
// to must be whole seconds, to after from.
func Compute(allocs []scenario.Allocation, from, to time.Time, groupBy []string) (*Report, error) {
	if err := checkKeys(groupBy); err != nil {
		return nil, err
	}
	switch {
	case from.IsZero() || to.IsZero():
		return nil, fmt.Errorf("%w: missing from or to", ErrWindow)
	case !to.After(from):
		return nil, fmt.Errorf("%w: to %s is not after from %s", ErrWindow, to.Format(time.RFC3339), from.Format(time.RFC3339))
	case !from.Truncate(time.Second).Equal(from) || !to.Truncate(time.Second).Equal(to):
		return nil, fmt.Errorf("%w: from and to must be whole seconds", ErrWindow)
	}
	f, t := from.Unix(), to.Unix()
	groups := map[string]*Row{}
	for i := range allocs {
		a := &allocs[i]
		start, end := a.Start.Unix(), t
		if !a.End.IsZero() {
			end = min(a.End.Unix(), t)
		}
		start = max(start, f)
		if end <= start {
			continue
		}
		secs := end - start
		vals := make([]string, len(groupBy))
		for j, k := range groupBy {
			vals[j] = value(a, k)
		}
		id := strings.Join(vals, "\x00")
		r, ok := groups[id]
		if !ok {
			r = &Row{Keys: vals}
			groups[id] = r
		}
		if err := r.add(a, secs); err != nil {
			return nil, fmt.Errorf("group %q: %w", strings.Join(vals, ","), err)
		}
	}
	rep := &Report{From: from, To: to, GroupBy: slices.Clone(groupBy), Rows: make([]Row, 0, len(groups))}
	for _, r := range groups {
		rep.Rows = append(rep.Rows, *r)
	}
	slices.SortFunc(rep.Rows, func(a, b Row) int { return slices.Compare(a.Keys, b.Keys) })
	return rep, nil
}

func (r *Row) add(a *scenario.Allocation, secs int64) error {
	if a.Class == accounting.ClassFPGA {
		return addMul(&r.FPGASeconds, a.Devices, secs)
	}
	if err := addMul(&r.AllocatedMilliGPUSeconds, a.WeightMilli, secs); err != nil {
		return err
	}
	return addMul(&r.DeviceSeconds, a.Devices, secs)
}

// addMul adds x × y to *sum, all non-negative, or fails on overflow.
func addMul(sum *int64, x, y int64) error {
	if x < 0 || y < 0 {
		return fmt.Errorf("negative weight or device count %d", x)
	}
	hi, lo := bits.Mul64(uint64(x), uint64(y))
	s := *sum + int64(lo)
	if hi != 0 || lo > 1<<63-1 || s < *sum {
		return ErrOverflow
	}
	*sum = s
	return nil
}

func value(a *scenario.Allocation, key string) string {
	var ns, name string
	if a.Pod != nil {
		ns, name = a.Pod.Namespace, a.Pod.Name
	}
	switch key {
	case KeyProject:
		return a.Project
	case KeyUser:
		return a.User
	case KeyNamespace:
		return ns
	case KeyResource:
		return string(a.Class)
	case KeyModel:
		return a.Model
	case KeySite:
		return a.Site
	case KeyNode:
		return a.Node
	case KeyPod:
		return ns + "/" + name
	case KeyQueue:
		return a.Queue
	case KeyProfile:
		return a.Profile
	}
	return ""
}

// Units of the report's columns.
const (
	MilliGPUSecondsPerHour = accounting.MilliPerGPU * 3600
	SecondsPerHour         = 3600
	// HourDecimals is how many decimals the hour columns show. Hours are
	// rounded half up from the integers; the exact figure is the integer
	// column allocated_milli_gpu_seconds (1 milli-GPU-second is
	// 0.000000278 GPU-hours, so no fixed number of decimals is exact for
	// every value).
	HourDecimals = 6
)

// Value columns, after the group-by columns.
const (
	ColAllocatedGPUHours        = "allocated_gpu_hours"
	ColDeviceHours              = "device_hours"
	ColFPGAHours                = "fpga_hours"
	ColAllocatedMilliGPUSeconds = "allocated_milli_gpu_seconds"
)

// Columns returns the report's column names: the group-by keys, then the
// value columns.
func (r *Report) Columns() []string {
	return append(slices.Clone(r.GroupBy), ColAllocatedGPUHours, ColDeviceHours, ColFPGAHours, ColAllocatedMilliGPUSeconds)
}

// Cells returns a row as typed cells in the order of Columns.
func (row *Row) Cells() []tabular.Cell {
	out := make([]tabular.Cell, 0, len(row.Keys)+4)
	for _, k := range row.Keys {
		out = append(out, tabular.String(k))
	}
	return append(out,
		tabular.Ratio(row.AllocatedMilliGPUSeconds, MilliGPUSecondsPerHour, HourDecimals),
		tabular.Ratio(row.DeviceSeconds, SecondsPerHour, HourDecimals),
		tabular.Ratio(row.FPGASeconds, SecondsPerHour, HourDecimals),
		tabular.Int(row.AllocatedMilliGPUSeconds))
}

// Window is the JSON form of a report's window.
type Window struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Write writes the report as a table: for JSON, an object with the window,
// the group-by keys and the rows.
func (r *Report) Write(w tabular.Writer) error {
	for i := range r.Rows {
		if err := w.Write(r.Rows[i].Cells()); err != nil {
			return err
		}
	}
	return w.Close()
}

// Meta returns the fields a JSON report carries beside its rows.
func (r *Report) Meta() []tabular.Field {
	gb := r.GroupBy
	if gb == nil {
		gb = []string{}
	}
	return []tabular.Field{
		{Name: "window", Value: Window{From: r.From.UTC().Format(time.RFC3339), To: r.To.UTC().Format(time.RFC3339)}},
		{Name: "group_by", Value: gb},
	}
}
