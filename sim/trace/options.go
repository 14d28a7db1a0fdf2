package trace

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Trace formats.
const (
	FormatAlibabaV2023  = "alibaba-v2023"
	FormatPhillyChronus = "philly-chronus"
)

// Standard file paths, relative to the trace directory (../shared/data in a
// checkout with the public traces beside it).
const (
	AlibabaPodsFile  = "alibaba-gpu-v2023/openb_pod_list_default.csv"
	AlibabaNodesFile = "alibaba-gpu-v2023/openb_node_list_gpu_node.csv"
	OrgsFile         = "alibaba-spot-gpu-v2026/org_by_gpu_seconds.derived.csv"
	PhillyJobsFile   = "philly-derived-chronus/trace_job_Philly_MIX1.first10000.csv"
)

// DefaultScrapeInterval is the scenario's scrape interval when Options
// leaves it zero.
const DefaultScrapeInterval = 15 * time.Second

// Options select the window of a trace and the synthetic parts of the
// scenario.
type Options struct {
	// Cluster names the scenario; empty means the format's name.
	Cluster string
	// Epoch is the wall-clock time of trace second 0 (whole seconds).
	Epoch time.Time
	// From is the offset of the window's start from Epoch, and Duration
	// its length; both whole seconds, From ≥ 0, Duration > 0.
	From, Duration time.Duration
	// Seed drives tenants, device UUIDs, pod UIDs and placement.
	Seed uint64
	// ScrapeInterval of the scenario; zero means DefaultScrapeInterval.
	ScrapeInterval time.Duration
	// MIGShare is the share in [0, 1] of the Alibaba trace's 8-GPU nodes
	// retyped as MIG-partitioned A100-SXM4-80GB nodes (alibaba-v2023 only;
	// 0, the default, keeps the trace's hardware and amounts).
	MIGShare float64
	// Source, when not empty, replaces the scenario's generated source line.
	Source string
}

// window is the selected range in trace seconds, [start, end).
type window struct{ start, end int64 }

func (w window) overlaps(start, end int64) bool { return start < w.end && end > w.start }

// check validates the options shared by every format and returns the
// window in trace seconds.
func (o *Options) check() (window, error) {
	var errs []error
	if o.Epoch.IsZero() {
		errs = append(errs, errors.New("missing epoch (the time of trace second 0)"))
	} else if o.Epoch.Truncate(time.Second) != o.Epoch {
		errs = append(errs, fmt.Errorf("epoch %s is not a whole second", o.Epoch.Format(time.RFC3339Nano)))
	}
	if o.From < 0 {
		errs = append(errs, fmt.Errorf("negative window offset %s", o.From))
	} else if o.From%time.Second != 0 {
		errs = append(errs, fmt.Errorf("window offset %s is not a whole number of seconds", o.From))
	}
	if o.Duration <= 0 {
		errs = append(errs, fmt.Errorf("window duration %s is not positive", o.Duration))
	} else if o.Duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("window duration %s is not a whole number of seconds", o.Duration))
	}
	if o.ScrapeInterval < 0 || o.ScrapeInterval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("scrape interval %s is not a positive whole number of seconds", o.ScrapeInterval))
	}
	if math.IsNaN(o.MIGShare) || o.MIGShare < 0 || o.MIGShare > 1 {
		errs = append(errs, fmt.Errorf("MIG share %v outside [0, 1]", o.MIGShare))
	}
	if err := errors.Join(errs...); err != nil {
		return window{}, err
	}
	from := int64(o.From / time.Second)
	return window{start: from, end: from + int64(o.Duration/time.Second)}, nil
}

// at converts a trace second to wall-clock time.
func (o *Options) at(sec int64) time.Time {
	return o.Epoch.UTC().Add(time.Duration(sec) * time.Second)
}

func (o *Options) scrapeInterval() time.Duration {
	if o.ScrapeInterval == 0 {
		return DefaultScrapeInterval
	}
	return o.ScrapeInterval
}

func (o *Options) cluster(format string) string {
	if o.Cluster != "" {
		return o.Cluster
	}
	return format
}
