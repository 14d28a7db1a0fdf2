package source

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// The families the conversion reads (docs/metrics.md). Every other family
// of an exposition is ignored.
const (
	FamilyStart    = "gpuledger_allocation_start_time_seconds"
	FamilyEnd      = "gpuledger_allocation_end_time_seconds"
	FamilyWeight   = "gpuledger_allocation_weight_ratio"
	FamilyDevices  = "gpuledger_allocation_devices"
	FamilyActivity = "gpuledger_allocation_activity_ratio"
	FamilyGPUInfo  = "gpuledger_gpu_info"
	FamilyEnergy   = "gpuledger_gpu_energy_joules_total"
	FamilyTime     = "gpuledger_exporter_time_seconds"
	FamilyFPGAInfo = "gpuledger_fpga_info"
	// FamilyQuota is served by the exporter in cluster mode: the Kueue
	// ClusterQueues' nominal quotas, by flavor and resource.
	FamilyQuota = "gpuledger_kueue_clusterqueue_nominal_quota"
	// FamilyUp is the series Prometheus writes for every scrape of a
	// target: 1 when the scrape succeeded, 0 when it failed. Exporters do
	// not serve it; the Prometheus source reads it to report failed scrapes.
	FamilyUp = "up"
)

// Families lists the exporter families the conversion reads, sorted.
func Families() []string {
	return []string{FamilyActivity, FamilyDevices, FamilyEnd, FamilyStart, FamilyWeight,
		FamilyTime, FamilyEnergy, FamilyFPGAInfo, FamilyGPUInfo, FamilyQuota}
}

// DefaultMaxBodyBytes bounds the exposition one scrape may return (after
// decompression). A busy node serves a few hundred kilobytes.
const DefaultMaxBodyBytes = 32 << 20

// Bounds of plausible values. They keep every conversion to integer units
// far from int64 overflow.
const (
	maxUnixSeconds = 1e11 // year 5138
	maxWeight      = 1e6  // GPUs in one allocation
	maxDevices     = 1e6
	maxJoules      = 1e12 // a million kWh on one device counter
)

// Errors of the conversion. A scrape whose body cannot be read at all
// fails with ErrBodyTooLarge or ErrBadBody; malformed series are reported
// one by one in a *SeriesError and the rest of the scrape is kept.
var (
	ErrBodyTooLarge = errors.New("exposition too large")
	ErrBadBody      = errors.New("exposition does not parse")
	ErrBadValue     = errors.New("bad value")
	ErrBadLabels    = errors.New("bad labels")
	ErrIncomplete   = errors.New("incomplete allocation")
	ErrDuplicate    = errors.New("duplicate series")
)

// SeriesError lists the series one conversion dropped. The scrape it comes
// with holds everything else and is usable.
type SeriesError struct {
	// Dropped counts the series dropped.
	Dropped int
	// Allocs are the allocations that could not be built in this scrape
	// (their start, weight or devices series was malformed or missing):
	// their state at this scrape is unknown, which is not the same as
	// absent.
	Allocs []observe.AllocKey
	// Errs holds the first errors, one per dropped series (at most
	// maxSeriesErrors of them).
	Errs []error
}

const maxSeriesErrors = 10

func (e *SeriesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d series dropped", e.Dropped)
	for i, err := range e.Errs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	if e.Dropped > len(e.Errs) {
		fmt.Fprintf(&b, "; … and %d more", e.Dropped-len(e.Errs))
	}
	return b.String()
}

// Unwrap returns the errors kept, so that errors.Is finds ErrBadValue and
// the others.
func (e *SeriesError) Unwrap() []error { return e.Errs }

func (e *SeriesError) add(err error) { e.addN(err, 1) }

// addN records err for n dropped series; with n = 0 (the series were
// already counted, with their own errors) it records nothing.
func (e *SeriesError) addN(err error, n int) {
	if n <= 0 {
		return
	}
	e.Dropped += n
	if len(e.Errs) < maxSeriesErrors {
		e.Errs = append(e.Errs, err)
	}
}

// merge adds o's counts and errors to e.
func (e *SeriesError) merge(o *SeriesError) {
	e.Dropped += o.Dropped
	e.Allocs = append(e.Allocs, o.Allocs...)
	for _, err := range o.Errs {
		if len(e.Errs) < maxSeriesErrors {
			e.Errs = append(e.Errs, err)
		}
	}
}

// orNil returns e as an error, or nil when nothing was dropped.
func (e *SeriesError) orNil() error {
	if e == nil || e.Dropped == 0 {
		return nil
	}
	return e
}

// ParseText reads a Prometheus text exposition (at most
// DefaultMaxBodyBytes) of the exporter target into a Scrape. The scrape
// time is gpuledger_exporter_time_seconds from the body, or fallback when
// the body has none. A body that is too large or does not parse gives an
// error wrapping ErrBodyTooLarge or ErrBadBody and a Scrape with OK false;
// malformed series give a *SeriesError with the rest of the scrape.
func ParseText(target string, r io.Reader, fallback time.Time) (observe.Scrape, error) {
	return parseFormat(target, r, expfmt.NewFormat(expfmt.TypeTextPlain), DefaultMaxBodyBytes, fallback)
}

// parseFormat decodes an exposition in format (text or delimited protobuf;
// an unknown format is read as text) of at most limit bytes.
func parseFormat(target string, r io.Reader, format expfmt.Format, limit int64, fallback time.Time) (observe.Scrape, error) {
	failed := observe.Scrape{Target: target, Time: fallback.UnixMilli()}
	lr := &limitedReader{r: r, n: limit}
	fams := map[string]*dto.MetricFamily{}
	dec := expfmt.NewDecoder(lr, format)
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if lr.over {
			return failed, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
		}
		if err != nil {
			return failed, fmt.Errorf("%w: %w", ErrBadBody, err)
		}
		if prev, ok := fams[mf.GetName()]; ok {
			prev.Metric = append(prev.Metric, mf.Metric...)
			continue
		}
		fams[mf.GetName()] = mf
	}
	if lr.over {
		return failed, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	return ParseFamilies(target, fams, fallback)
}

// limitedReader reads at most n bytes and remembers whether r had more.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// ParseFamilies converts the metric families of one exposition of the
// exporter target into a Scrape: allocations from the gpuledger_allocation_*
// families joined on their labels, GPUs from gpuledger_gpu_info and
// gpuledger_gpu_energy_joules_total, FPGAs from gpuledger_fpga_info, Kueue
// quotas from gpuledger_kueue_clusterqueue_nominal_quota, the time from
// gpuledger_exporter_time_seconds (fallback when absent or malformed).
// Values become integer units: weight in milli-GPU, start and end in whole
// seconds, energy in millijoules, activity and quotas in thousandths. A
// NaN, infinite, negative, out-of-range or missing value drops its series
// (or, when it is the start, weight or devices of an allocation, the
// allocation) with an error in the returned *SeriesError; the rest of the
// scrape is kept.
func ParseFamilies(target string, fams map[string]*dto.MetricFamily, fallback time.Time) (observe.Scrape, error) {
	b := newBuilder()
	for name, mf := range fams {
		fam := familyOf(name)
		if fam == famNone {
			continue
		}
		for _, m := range mf.GetMetric() {
			s, err := decodeSeries(fam, dtoLabels(m.GetLabel()))
			if err != nil {
				b.errs.add(err)
				continue
			}
			v, ok := dtoValue(m)
			if !ok {
				b.errs.add(fmt.Errorf("%w: %s: not a gauge, counter or untyped sample", ErrBadValue, s.describe()))
				continue
			}
			b.add(s, v)
		}
	}
	sc, errs := b.finish(target, fallback.UnixMilli())
	return sc, errs.orNil()
}

func dtoValue(m *dto.Metric) (float64, bool) {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

// labelGetter reads one label of a series; "" when absent.
type labelGetter interface {
	get(name string) string
	String() string
}

type dtoLabels []*dto.LabelPair

func (l dtoLabels) get(name string) string {
	for _, p := range l {
		if p.GetName() == name {
			return p.GetValue()
		}
	}
	return ""
}

func (l dtoLabels) String() string {
	ls := make(model.LabelSet, len(l))
	for _, p := range l {
		ls[model.LabelName(p.GetName())] = model.LabelValue(p.GetValue())
	}
	return ls.String()
}

type metricLabels model.Metric

func (l metricLabels) get(name string) string { return string(l[model.LabelName(name)]) }

func (l metricLabels) String() string {
	ls := make(model.LabelSet, len(l))
	for k, v := range l {
		if k != model.MetricNameLabel {
			ls[k] = v
		}
	}
	return ls.String()
}

type family int

const (
	famNone family = iota
	famStart
	famEnd
	famWeight
	famDevices
	famActivity
	famGPUInfo
	famEnergy
	famTime
	famFPGAInfo
	famQuota
	famUp
)

var familyNames = map[string]family{
	FamilyStart: famStart, FamilyEnd: famEnd, FamilyWeight: famWeight, FamilyDevices: famDevices,
	FamilyActivity: famActivity, FamilyGPUInfo: famGPUInfo, FamilyEnergy: famEnergy, FamilyTime: famTime,
	FamilyFPGAInfo: famFPGAInfo, FamilyQuota: famQuota,
}

func familyOf(name string) family { return familyNames[name] }

func (f family) name() string {
	if f == famUp {
		return FamilyUp
	}
	for n, g := range familyNames {
		if g == f {
			return n
		}
	}
	return "unknown"
}

// allocID is everything that identifies one allocation's series: the key
// and the descriptive labels. The series of one allocation carry identical
// labels, so they share an allocID.
type allocID struct {
	observe.AllocKey
	observe.Attrs
}

type gpuID struct{ Node, UUID string }

// quotaID identifies one quota series: ClusterQueue, flavor, resource.
type quotaID struct{ queue, flavor, resource string }

// series is one decoded series: its family and identity.
type series struct {
	fam    family
	alloc  allocID
	gpu    gpuID
	quota  quotaID
	model  string // gpu_info
	labels labelGetter
}

func (s *series) describe() string { return s.fam.name() + s.labels.String() }

// nodeOf returns the exporter's node label. A Prometheus scrape that adds
// its own node target label renames the exporter's to exported_node.
func nodeOf(l labelGetter) string {
	if n := l.get("exported_node"); n != "" {
		return n
	}
	return l.get("node")
}

// decodeSeries reads the labels of a series of family fam.
func decodeSeries(fam family, l labelGetter) (*series, error) {
	s := &series{fam: fam, labels: l}
	switch fam {
	case famStart, famEnd, famWeight, famDevices, famActivity:
		s.alloc = allocID{
			AllocKey: observe.AllocKey{Node: nodeOf(l), Device: l.get("device"), PodUID: l.get("pod_uid"), Resource: l.get("resource")},
			Attrs: observe.Attrs{Class: l.get("class"), GPUUUID: l.get("gpu_uuid"), Model: l.get("model"), Profile: l.get("profile"),
				Namespace: l.get("namespace"), Pod: l.get("pod"), User: l.get("user"), Project: l.get("project"),
				Queue: l.get("queue"), Site: l.get("site")},
		}
		var missing []string
		for _, kv := range [][2]string{{"node", s.alloc.Node}, {"pod_uid", s.alloc.PodUID}, {"resource", s.alloc.Resource}, {"class", s.alloc.Class}} {
			if kv[1] == "" {
				missing = append(missing, kv[0])
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: %s: no %s", ErrBadLabels, s.describe(), strings.Join(missing, ", "))
		}
	case famGPUInfo, famEnergy:
		s.gpu = gpuID{Node: nodeOf(l), UUID: l.get("uuid")}
		s.model = l.get("model")
		if s.gpu.Node == "" || s.gpu.UUID == "" {
			return nil, fmt.Errorf("%w: %s: no node or uuid", ErrBadLabels, s.describe())
		}
	case famFPGAInfo:
		s.gpu = gpuID{Node: nodeOf(l), UUID: l.get("device")}
		s.model = l.get("model")
		if s.gpu.Node == "" || s.gpu.UUID == "" {
			return nil, fmt.Errorf("%w: %s: no node or device", ErrBadLabels, s.describe())
		}
	case famQuota:
		s.quota = quotaID{queue: l.get("cluster_queue"), flavor: l.get("flavor"), resource: l.get("resource")}
		if s.quota.queue == "" || s.quota.resource == "" {
			return nil, fmt.Errorf("%w: %s: no cluster_queue or resource", ErrBadLabels, s.describe())
		}
	}
	return s, nil
}

// partial collects the series of one allocation in one scrape.
type partial struct {
	start, end, weight, devices, activity int64
	has                                   [famActivity + 1]bool
	first                                 *series // for error messages
}

type gpuPartial struct {
	model          string
	energy         int64
	hasInfo, hasEn bool
}

// builder turns the samples of one scrape into an observe.Scrape.
type builder struct {
	allocs  map[allocID]*partial
	gpus    map[gpuID]*gpuPartial
	fpgas   map[gpuID]string  // model
	quotas  map[quotaID]int64 // milli; nil until a quota is served
	timeMs  int64
	hasTime bool
	up      float64
	hasUp   bool
	samples int // valid samples of gpuledger families added
	errs    SeriesError
}

func newBuilder() *builder {
	return &builder{allocs: map[allocID]*partial{}, gpus: map[gpuID]*gpuPartial{}, fpgas: map[gpuID]string{}}
}

// checkValue checks v against [lo, hi]; it returns an error naming s.
func checkValue(s *series, v, lo, hi float64) error {
	switch {
	case math.IsNaN(v):
		return fmt.Errorf("%w: %s is NaN", ErrBadValue, s.describe())
	case math.IsInf(v, 0):
		return fmt.Errorf("%w: %s is %v", ErrBadValue, s.describe(), v)
	case v < lo:
		if lo == 0 {
			return fmt.Errorf("%w: %s is negative (%v)", ErrBadValue, s.describe(), v)
		}
		return fmt.Errorf("%w: %s is %v, below %v", ErrBadValue, s.describe(), v, lo)
	case v > hi:
		return fmt.Errorf("%w: %s is %v, above %v", ErrBadValue, s.describe(), v, hi)
	}
	return nil
}

// add records the value v of series s.
func (b *builder) add(s *series, v float64) {
	switch s.fam {
	case famUp:
		if err := checkValue(s, v, 0, 1); err != nil {
			b.errs.add(err)
			return
		}
		b.up, b.hasUp = v, true
		return
	case famTime:
		if err := checkValue(s, v, 1, maxUnixSeconds); err != nil {
			b.errs.add(err)
			return
		}
		if b.hasTime {
			b.errs.add(fmt.Errorf("%w: %s", ErrDuplicate, s.describe()))
			return
		}
		b.timeMs, b.hasTime = int64(math.Round(v*1000)), true
		b.samples++
		return
	case famFPGAInfo:
		if err := checkValue(s, v, math.Inf(-1), math.Inf(1)); err != nil {
			b.errs.add(err)
			return
		}
		if _, dup := b.fpgas[s.gpu]; dup {
			b.errs.add(fmt.Errorf("%w: %s", ErrDuplicate, s.describe()))
			return
		}
		b.fpgas[s.gpu] = s.model
		b.samples++
		return
	case famQuota:
		if err := checkValue(s, v, 0, maxDevices); err != nil {
			b.errs.add(err)
			return
		}
		if _, dup := b.quotas[s.quota]; dup {
			b.errs.add(fmt.Errorf("%w: %s", ErrDuplicate, s.describe()))
			return
		}
		if b.quotas == nil {
			b.quotas = map[quotaID]int64{}
		}
		b.quotas[s.quota] = int64(math.Round(v * 1000))
		b.samples++
		return
	case famGPUInfo, famEnergy:
		g := b.gpus[s.gpu]
		if g == nil {
			g = &gpuPartial{energy: -1}
			b.gpus[s.gpu] = g
		}
		if s.fam == famGPUInfo {
			if err := checkValue(s, v, math.Inf(-1), math.Inf(1)); err != nil {
				b.errs.add(err)
				return
			}
			if g.hasInfo {
				b.errs.add(fmt.Errorf("%w: %s", ErrDuplicate, s.describe()))
				return
			}
			g.model, g.hasInfo = s.model, true
		} else {
			if err := checkValue(s, v, 0, maxJoules); err != nil {
				b.errs.add(err)
				return
			}
			if g.hasEn {
				b.errs.add(fmt.Errorf("%w: %s", ErrDuplicate, s.describe()))
				return
			}
			g.energy, g.hasEn = int64(math.Round(v*1000)), true
		}
		b.samples++
		return
	}
	p := b.allocs[s.alloc]
	if p == nil {
		p = &partial{activity: -1, first: s}
		b.allocs[s.alloc] = p
	}
	if p.has[s.fam] {
		b.errs.add(fmt.Errorf("%w: %s", ErrDuplicate, s.describe()))
		return
	}
	var err error
	switch s.fam {
	case famStart, famEnd:
		if err = checkValue(s, v, 1, maxUnixSeconds); err == nil {
			if s.fam == famStart {
				p.start = int64(math.Round(v))
			} else {
				p.end = int64(math.Round(v))
			}
		}
	case famWeight:
		if err = checkValue(s, v, 0, maxWeight); err == nil {
			p.weight = int64(math.Round(v * 1000))
		}
	case famDevices:
		if err = checkValue(s, v, 0, maxDevices); err == nil {
			p.devices = int64(math.Round(v))
		}
	case famActivity:
		if err = checkValue(s, v, 0, 1); err == nil {
			p.activity = int64(math.Round(v * 1000))
		}
	}
	if err != nil {
		b.errs.add(err)
		return
	}
	p.has[s.fam] = true
	b.samples++
}

// finish builds the Scrape, at the exporter's time when it reported one,
// else at fallbackMs.
func (b *builder) finish(target string, fallbackMs int64) (observe.Scrape, *SeriesError) {
	sc := observe.Scrape{Target: target, Time: fallbackMs, OK: true}
	if b.hasTime {
		sc.Time = b.timeMs
	}
	errs := b.errs
	ids := make([]allocID, 0, len(b.allocs))
	for id := range b.allocs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].AllocKey != ids[j].AllocKey {
			return keyLess(ids[i].AllocKey, ids[j].AllocKey)
		}
		return fmt.Sprint(ids[i].Attrs) < fmt.Sprint(ids[j].Attrs)
	})
	for _, id := range ids {
		p := b.allocs[id]
		valid := 0 // valid series of the allocation, dropped with it
		for _, h := range p.has {
			if h {
				valid++
			}
		}
		var missing []string
		for _, f := range []family{famStart, famWeight, famDevices} {
			if !p.has[f] {
				missing = append(missing, f.name())
			}
		}
		if len(missing) > 0 {
			errs.Allocs = append(errs.Allocs, id.AllocKey)
			errs.addN(fmt.Errorf("%w: %s: no valid %s", ErrIncomplete, allocText(id), strings.Join(missing, ", ")), valid)
			continue
		}
		if p.has[famEnd] && p.end < p.start {
			errs.Allocs = append(errs.Allocs, id.AllocKey)
			errs.addN(fmt.Errorf("%w: %s ends (%d) before it starts (%d)", ErrBadValue, allocText(id), p.end, p.start), valid)
			continue
		}
		a := observe.Alloc{AllocKey: id.AllocKey, Attrs: id.Attrs, Start: p.start, WeightMilli: p.weight,
			Devices: p.devices, ActivityMilli: p.activity}
		if p.has[famEnd] {
			a.End = p.end
		}
		sc.Allocs = append(sc.Allocs, a)
	}
	sort.SliceStable(sc.Allocs, func(i, j int) bool { return keyLess(sc.Allocs[i].AllocKey, sc.Allocs[j].AllocKey) })
	// Two allocations with one key and different labels cannot both be
	// right: keep the first in order, drop the others.
	kept := sc.Allocs[:0]
	for i := range sc.Allocs {
		if len(kept) > 0 && kept[len(kept)-1].AllocKey == sc.Allocs[i].AllocKey {
			a := &sc.Allocs[i]
			n := 3 // start, weight, devices
			if a.End != 0 {
				n++
			}
			if a.ActivityMilli >= 0 {
				n++
			}
			errs.Allocs = append(errs.Allocs, a.AllocKey)
			errs.addN(fmt.Errorf("%w: allocation %s exported twice with different labels", ErrDuplicate, keyText(a.AllocKey)), n)
			continue
		}
		kept = append(kept, sc.Allocs[i])
	}
	sc.Allocs = slices.Clip(kept)
	if len(sc.Allocs) == 0 {
		sc.Allocs = nil
	}
	for id, g := range b.gpus {
		sc.GPUs = append(sc.GPUs, observe.GPU{Node: id.Node, UUID: id.UUID, Model: g.model, EnergyMillijoules: g.energy})
	}
	sort.Slice(sc.GPUs, func(i, j int) bool {
		if sc.GPUs[i].Node != sc.GPUs[j].Node {
			return sc.GPUs[i].Node < sc.GPUs[j].Node
		}
		return sc.GPUs[i].UUID < sc.GPUs[j].UUID
	})
	for id, model := range b.fpgas {
		sc.FPGAs = append(sc.FPGAs, observe.FPGA{Node: id.Node, Device: id.UUID, Model: model})
	}
	sort.Slice(sc.FPGAs, func(i, j int) bool {
		if sc.FPGAs[i].Node != sc.FPGAs[j].Node {
			return sc.FPGAs[i].Node < sc.FPGAs[j].Node
		}
		return sc.FPGAs[i].Device < sc.FPGAs[j].Device
	})
	sc.Quotas = b.finishQuotas()
	sort.Slice(errs.Allocs, func(i, j int) bool { return keyLess(errs.Allocs[i], errs.Allocs[j]) })
	errs.Allocs = slices.Compact(errs.Allocs)
	// The reconstruction must not take them for ended.
	sc.Unknown = slices.Clone(errs.Allocs)
	return sc, &errs
}

// finishQuotas returns the quotas, sorted by queue, flavor and resource;
// nil when the scrape served none.
func (b *builder) finishQuotas() []observe.Quota {
	if len(b.quotas) == 0 {
		return nil
	}
	out := make([]observe.Quota, 0, len(b.quotas))
	for id, milli := range b.quotas {
		out = append(out, observe.Quota{ClusterQueue: id.queue, Flavor: id.flavor, Resource: id.resource, NominalMilli: milli})
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.ClusterQueue != y.ClusterQueue {
			return x.ClusterQueue < y.ClusterQueue
		}
		if x.Flavor != y.Flavor {
			return x.Flavor < y.Flavor
		}
		return x.Resource < y.Resource
	})
	return out
}

func keyLess(a, b observe.AllocKey) bool {
	if a.Node != b.Node {
		return a.Node < b.Node
	}
	if a.Device != b.Device {
		return a.Device < b.Device
	}
	if a.PodUID != b.PodUID {
		return a.PodUID < b.PodUID
	}
	return a.Resource < b.Resource
}

func keyText(k observe.AllocKey) string {
	return fmt.Sprintf("{node=%q, device=%q, pod_uid=%q, resource=%q}", k.Node, k.Device, k.PodUID, k.Resource)
}

func allocText(id allocID) string {
	return fmt.Sprintf("allocation of pod %s/%s %s", id.Namespace, id.Pod, keyText(id.AllocKey))
}
