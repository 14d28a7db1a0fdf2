// Package dcgm is the exporter's DCGM source. DCGM's Go binding cannot be
// obtained, so the source reads what the node-local NVIDIA dcgm-exporter
// serves on its /metrics (the Prometheus text format): Parse turns a body
// into readings per device (a whole GPU, or a MIG GPU instance of one), a
// Source polls the endpoint in the background, keys each reading to the
// node's device identity (node.Inventory), publishes activity there, and
// serves the profiling activity as metrics. A scrape only reads the last
// snapshot: a hung or failing dcgm-exporter never blocks it.
//
// docs/dcgm.md describes the options, the fields read, the keying rules and
// the behaviour on failure.
package dcgm

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// DefaultMaxBodyBytes is the default limit on a dcgm-exporter body. A node
// with eight GPUs, each split into seven MIG instances, serves well under
// a megabyte.
const DefaultMaxBodyBytes = 16 << 20

// Limits on what one body may hold, so that a bad body cannot grow the
// source's memory or the exporter's series without bound.
const (
	// MaxDevices is the most readings (whole GPUs and MIG instances) one
	// body may give; series of further devices are dropped.
	MaxDevices = 1024
	// MaxPods is the most pods remembered per device; others are ignored.
	MaxPods = 256
)

// Errors of Parse. A body that fails with any of them gives nothing.
var (
	// ErrBodyTooLarge: the body exceeds the size limit.
	ErrBodyTooLarge = errors.New("dcgm-exporter body too large")
	// ErrBadBody: the body is not the Prometheus text format (an HTML
	// error page, a truncated body, garbage).
	ErrBadBody = errors.New("dcgm-exporter body does not parse")
	// ErrNoDCGM: the body parses but holds no DCGM_FI_ series: the URL is
	// probably not a dcgm-exporter's.
	ErrNoDCGM = errors.New("no DCGM_FI_ series in the body")
)

// Reasons a sample is dropped, the values of the reason label of
// gpuledger_dcgm_samples_dropped_total.
const (
	// ReasonNaN: the value is NaN or infinite.
	ReasonNaN = "nan"
	// ReasonOutOfRange: the value is negative, or a ratio above 1.
	ReasonOutOfRange = "out_of_range"
	// ReasonNoUUID: the series has no UUID (nor uuid) label.
	ReasonNoUUID = "no_uuid"
	// ReasonBadLabel: GPU_I_ID is not a non-negative integer.
	ReasonBadLabel = "bad_label"
	// ReasonBadType: a field of interest served as a histogram or summary.
	ReasonBadType = "bad_type"
	// ReasonDuplicate: the same series (every label equal) served twice.
	// The first is kept.
	ReasonDuplicate = "duplicate"
	// ReasonConflict: two series of one device and field (differing in
	// other labels, such as the pod) with different values. The first is
	// kept.
	ReasonConflict = "conflict"
	// ReasonTooManyDevices: the body names more than MaxDevices devices.
	ReasonTooManyDevices = "too_many_devices"
	// ReasonUnresolved: a MIG instance the node's inventory does not know
	// (counted once per instance and poll by the Source); its activity is
	// served but not published to the inventory.
	ReasonUnresolved = "unresolved"
)

// Reasons returns every drop reason, sorted.
func Reasons() []string {
	return []string{ReasonBadLabel, ReasonBadType, ReasonConflict, ReasonDuplicate, ReasonNaN,
		ReasonNoUUID, ReasonOutOfRange, ReasonTooManyDevices, ReasonUnresolved}
}

// Identity is what dcgm-exporter says about a device.
type Identity struct {
	// UUID is the physical GPU's ("GPU-<uuid>"): the device itself, or a
	// MIG instance's parent.
	UUID string
	// GPU is the GPU's index on the node ("0", "1", …); may be empty.
	GPU string
	// Model (modelName), Hostname and PCIBusID (pci_bus_id) may be empty:
	// older dcgm-exporters omit some.
	Model, Hostname, PCIBusID string
	// Profile is the MIG profile (GPU_I_PROFILE, "1g.10gb"); empty for a
	// whole GPU.
	Profile string
	// GPUInstanceID is the MIG GPU instance (GPU_I_ID); -1 for a whole GPU.
	GPUInstanceID int
}

// MIG reports whether the identity is a MIG GPU instance.
func (id Identity) MIG() bool { return id.GPUInstanceID >= 0 }

// Pod is a pod dcgm-exporter attributes a device to (its Kubernetes mode).
type Pod struct {
	Namespace, Name, Container string
}

// Reading is the values of one device in one body.
type Reading struct {
	Identity
	// Pods are the pods the series named, sorted; empty when dcgm-exporter
	// runs without pod attribution or the device is free.
	Pods   []Pod
	values [numFields]float64
	has    [numFields]bool
}

// Value returns a field's value in its unit (see Field), and whether the
// body had one.
func (r *Reading) Value(f Field) (float64, bool) {
	if f < 0 || f >= numFields || !r.has[f] {
		return 0, false
	}
	return r.values[f], true
}

// Parsed is what Parse read from a body.
type Parsed struct {
	// Readings are sorted by UUID, a whole GPU before its MIG instances,
	// then by GPU instance ID. Each has at least one value.
	Readings []Reading
	// Samples is the number of values kept.
	Samples int
	// Dropped counts the samples of fields of interest that were dropped,
	// by reason (ReasonNaN…). Metrics other than the fields are ignored,
	// not dropped.
	Dropped map[string]int
}

// Parse reads a dcgm-exporter body, at most limit bytes (DefaultMaxBodyBytes
// when limit is not positive). A body that exceeds the limit fails with
// ErrBodyTooLarge, one that does not parse with ErrBadBody, one without
// DCGM series with ErrNoDCGM; nothing is kept from them. Within a good
// body, bad samples are dropped and counted, and the rest is kept.
func Parse(r io.Reader, limit int64) (*Parsed, error) {
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	if !hasDCGM(families) {
		return nil, ErrNoDCGM
	}
	b := newBuilder()
	for f := range numFields {
		if mf, ok := families[fieldSpecs[f].name]; ok {
			b.family(f, mf)
		}
	}
	return b.result(), nil
}

func hasDCGM(families map[string]*dto.MetricFamily) bool {
	for name := range families {
		if strings.HasPrefix(name, "DCGM_FI_") {
			return true
		}
	}
	return false
}

// deviceKey identifies a reading within a body.
type deviceKey struct {
	uuid string
	gi   int
}

type builder struct {
	readings map[deviceKey]*Reading
	samples  int
	dropped  map[string]int
}

func newBuilder() *builder {
	return &builder{readings: map[deviceKey]*Reading{}, dropped: map[string]int{}}
}

// family adds the samples of one field's family.
func (b *builder) family(f Field, mf *dto.MetricFamily) {
	seen := make(map[string]struct{}, len(mf.GetMetric()))
	for _, m := range mf.GetMetric() {
		sig := signature(m.GetLabel())
		if _, dup := seen[sig]; dup {
			b.dropped[ReasonDuplicate]++
			continue
		}
		seen[sig] = struct{}{}
		if reason := b.sample(f, mf.GetType(), m); reason != "" {
			b.dropped[reason]++
		}
	}
}

// sample adds one sample; it returns the reason when it is dropped.
func (b *builder) sample(f Field, typ dto.MetricType, m *dto.Metric) string {
	var raw float64
	switch typ {
	case dto.MetricType_GAUGE:
		raw = m.GetGauge().GetValue()
	case dto.MetricType_COUNTER:
		raw = m.GetCounter().GetValue()
	case dto.MetricType_UNTYPED:
		raw = m.GetUntyped().GetValue()
	default:
		return ReasonBadType
	}
	v, reason, ok := f.convert(raw)
	if !ok {
		return reason
	}
	id, reason := identity(m.GetLabel())
	if reason != "" {
		return reason
	}
	key := deviceKey{id.UUID, id.GPUInstanceID}
	rd, ok := b.readings[key]
	if !ok {
		if len(b.readings) >= MaxDevices {
			return ReasonTooManyDevices
		}
		rd = &Reading{Identity: id}
		b.readings[key] = rd
	}
	rd.fill(id)
	rd.addPod(pod(m.GetLabel()))
	if rd.has[f] {
		if rd.values[f] != v {
			return ReasonConflict
		}
		return "" // the same value once per pod sharing the device
	}
	rd.values[f], rd.has[f] = v, true
	b.samples++
	return ""
}

func (b *builder) result() *Parsed {
	out := &Parsed{Readings: make([]Reading, 0, len(b.readings)), Samples: b.samples, Dropped: b.dropped}
	for _, rd := range b.readings {
		slices.SortFunc(rd.Pods, func(x, y Pod) int {
			return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name), cmp.Compare(x.Container, y.Container))
		})
		out.Readings = append(out.Readings, *rd)
	}
	slices.SortFunc(out.Readings, func(x, y Reading) int {
		return cmp.Or(cmp.Compare(x.UUID, y.UUID), cmp.Compare(x.GPUInstanceID, y.GPUInstanceID))
	})
	return out
}

// fill completes the identity with what a later series of the same device
// says and the first did not.
func (r *Reading) fill(id Identity) {
	fillEmpty(&r.GPU, id.GPU)
	fillEmpty(&r.Model, id.Model)
	fillEmpty(&r.Hostname, id.Hostname)
	fillEmpty(&r.PCIBusID, id.PCIBusID)
	fillEmpty(&r.Profile, id.Profile)
}

func fillEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func (r *Reading) addPod(p Pod) {
	if p == (Pod{}) || len(r.Pods) >= MaxPods || slices.Contains(r.Pods, p) {
		return
	}
	r.Pods = append(r.Pods, p)
}

// identity reads a series' device identity. The reason is set when the
// series cannot be keyed.
func identity(ls []*dto.LabelPair) (Identity, string) {
	id := Identity{
		UUID:     label(ls, "UUID", "uuid"),
		GPU:      label(ls, "gpu"),
		Model:    label(ls, "modelName"),
		Hostname: label(ls, "Hostname", "hostname"),
		PCIBusID: label(ls, "pci_bus_id"),
		Profile:  label(ls, "GPU_I_PROFILE"),
	}
	if id.UUID == "" {
		return id, ReasonNoUUID
	}
	id.GPUInstanceID = -1
	if gi := label(ls, "GPU_I_ID"); gi != "" {
		n, err := strconv.Atoi(gi)
		if err != nil || n < 0 {
			return id, ReasonBadLabel
		}
		id.GPUInstanceID = n
	} else {
		id.Profile = "" // a profile without an instance names no MIG device
	}
	return id, ""
}

func pod(ls []*dto.LabelPair) Pod {
	return Pod{Namespace: label(ls, "namespace"), Name: label(ls, "pod"), Container: label(ls, "container")}
}

// label returns the first non-empty value among the names, each looked up
// first with the exported_ prefix: a Prometheus (or a proxy) that adds its
// own label of the same name renames the series' own to exported_<name>,
// and the series' own is the one that describes the device.
func label(ls []*dto.LabelPair, names ...string) string {
	for _, prefix := range [...]string{"exported_", ""} {
		for _, n := range names {
			for _, lp := range ls {
				if v := lp.GetValue(); v != "" && lp.GetName() == prefix+n {
					return v
				}
			}
		}
	}
	return ""
}

// signature identifies a series by its label pairs, in any order.
func signature(ls []*dto.LabelPair) string {
	pairs := make([]string, len(ls))
	for i, lp := range ls {
		pairs[i] = strconv.Quote(lp.GetName()) + "=" + strconv.Quote(lp.GetValue())
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}
