package dcgm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	h100GPU0 = "GPU-5d9a3c1e-7b42-4f0e-9c61-2a8e4b7d1f03"
	h100GPU1 = "GPU-8e2f6a90-13c4-4d7b-a5e8-6f0b9c2d4e17"
	a100GPU0 = "GPU-1f7c2b9a-64d3-4e8a-b0c5-93d2e7a61b48"
	a100GPU1 = "GPU-a93e04d2-5c18-47b6-8f2d-1e6b0c9a7d35"
)

// referenceDir is the real dcgm-exporter samples under /work/shared (or
// $GPULEDGER_SHARED), read in place; the test skips when they are absent.
func referenceDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "reference", "dcgm-exporter")
	if env := os.Getenv("GPULEDGER_SHARED"); env != "" {
		dir = filepath.Join(env, "reference", "dcgm-exporter")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real dcgm-exporter samples not found at %s (set $GPULEDGER_SHARED to the shared folder): %v", dir, err)
	}
	return dir
}

func parseFile(t *testing.T, path string) *Parsed {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(bytes.NewReader(body), 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	checkParsed(t, p, bytes.Count(body, []byte("\n")))
	return p
}

// want is the expected reading of one device: its identity, pods and values.
type want struct {
	id     Identity
	pods   []Pod
	values map[Field]float64
}

func checkReadings(t *testing.T, got []Reading, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		var ids []string
		for _, r := range got {
			ids = append(ids, fmt.Sprintf("%s/%d", r.UUID, r.GPUInstanceID))
		}
		t.Fatalf("got %d readings %v, want %d", len(got), ids, len(wants))
	}
	for i, w := range wants {
		r := got[i]
		if r.Identity != w.id {
			t.Errorf("reading %d: identity %+v, want %+v", i, r.Identity, w.id)
		}
		if !slices.Equal(r.Pods, w.pods) {
			t.Errorf("reading %d (%s/%d): pods %v, want %v", i, r.UUID, r.GPUInstanceID, r.Pods, w.pods)
		}
		for _, f := range Fields() {
			v, ok := r.Value(f)
			wv, wok := w.values[f]
			if ok != wok || math.Abs(v-wv) > 1e-9*math.Max(1, math.Abs(wv)) {
				t.Errorf("reading %d (%s/%d): %s = %v (present %v), want %v (present %v)",
					i, r.UUID, r.GPUInstanceID, f, v, ok, wv, wok)
			}
		}
	}
}

func TestParseReference(t *testing.T) {
	dir := referenceDir(t)
	t.Run("tesla-t4", func(t *testing.T) {
		p := parseFile(t, filepath.Join(dir, "datadog-fixture-tesla-t4-sample.txt"))
		checkReadings(t, p.Readings, []want{{
			id: Identity{UUID: "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e", GPU: "0", Model: "Tesla T4",
				Hostname: "424773df46e0", GPUInstanceID: -1},
			values: map[Field]float64{Power: 8.969, Energy: 128996.013, GPUUtil: 0, XID: 0,
				FBFree: 15109 * mib, FBUsed: 0},
		}})
		if p.Samples != 6 || len(p.Dropped) != 0 {
			t.Errorf("samples %d, dropped %v; want 6 and none", p.Samples, p.Dropped)
		}
	})
	t.Run("a100-mig", func(t *testing.T) {
		p := parseFile(t, filepath.Join(dir, "nvidia-docs-a100-mig-1g5gb-sample.txt"))
		const uuid = "GPU-34319582-d595-d1c7-d1d2-179bcfa61660"
		checkReadings(t, p.Readings, []want{
			{
				id: Identity{UUID: uuid, GPU: "0", Hostname: "ub20-a100-k8s", GPUInstanceID: -1},
				values: map[Field]float64{Power: 409.692, Energy: 319159.391, XID: 0, FBFree: 35690 * mib,
					FBUsed: 4845 * mib, GraphicsActive: 0.995630, TensorActive: 0.929260, DRAMActive: 0.690789},
			},
			{
				id:     Identity{UUID: uuid, GPU: "0", Hostname: "ub20-a100-k8s", Profile: "1g.5gb", GPUInstanceID: 13},
				values: map[Field]float64{XID: 0, GraphicsActive: 0.995687, TensorActive: 0.930433, DRAMActive: 0.800339},
			},
		})
		if len(p.Dropped) != 0 {
			t.Errorf("dropped %v, want none", p.Dropped)
		}
	})
	t.Run("gh200-dra-pods", func(t *testing.T) {
		// Only DCGM_FI_PROF_PCIE_RX_BYTES, which is not read: a body of
		// DCGM series none of which are of interest is no error.
		p := parseFile(t, filepath.Join(dir, "k8s-website-dra-pod-labels-sample.txt"))
		if len(p.Readings) != 0 || p.Samples != 0 || len(p.Dropped) != 0 {
			t.Errorf("got %d readings, %d samples, dropped %v; want nothing", len(p.Readings), p.Samples, p.Dropped)
		}
	})
}

func TestParseH100MIG(t *testing.T) {
	p := parseFile(t, filepath.Join("testdata", "h100-mig-node.txt"))
	const model, host = "NVIDIA H100 80GB HBM3", "gpu-h100-07"
	mig := func(gi int, profile string, pods []Pod, gr, tensor, dram, sm, usedMiB, freeMiB float64) want {
		return want{
			id: Identity{UUID: h100GPU0, GPU: "0", Model: model, Hostname: host, PCIBusID: "00000000:19:00.0",
				Profile: profile, GPUInstanceID: gi},
			pods: pods,
			values: map[Field]float64{GraphicsActive: gr, TensorActive: tensor, DRAMActive: dram, SMActive: sm,
				FBUsed: usedMiB * mib, FBFree: freeMiB * mib},
		}
	}
	checkReadings(t, p.Readings, []want{
		{
			id:     Identity{UUID: h100GPU0, GPU: "0", Model: model, Hostname: host, PCIBusID: "00000000:19:00.0", GPUInstanceID: -1},
			values: map[Field]float64{Power: 412.337, Energy: 8123456.789, XID: 0},
		},
		mig(2, "3g.40gb", []Pod{{"ml-team", "train-llama-0", "trainer"}}, 0.912345, 0.623401, 0.5512, 0.8745, 31877, 40192-31877),
		mig(3, "2g.20gb", []Pod{{"hub-alice", "jupyter-alice", "notebook"}}, 0.054321, 0, 0.0123, 0.0401, 2113, 19968-2113),
		mig(9, "1g.10gb", nil, 0, 0, 0, 0, 13, 9984-13),
		mig(10, "1g.10gb", []Pod{{"physics", "sim-cms-7f9c", "worker"}}, 0.25, 0.1, 0.3, 0.2, 4096, 9984-4096),
		{
			id:   Identity{UUID: h100GPU1, GPU: "1", Model: model, Hostname: host, PCIBusID: "00000000:3B:00.0", GPUInstanceID: -1},
			pods: []Pod{{"ml-team", "infer-a", "server"}, {"ml-team", "infer-b", "server"}},
			values: map[Field]float64{Power: 536.812, Energy: 9876543.21, GPUUtil: 0.87, XID: 0,
				FBUsed: 40448 * mib, FBFree: 40631 * mib, GraphicsActive: 0.8733, TensorActive: 0.4122,
				DRAMActive: 0.655, SMActive: 0.9011},
		},
	})
	// A time-sliced GPU's series repeat once per pod with the same value:
	// merged, not dropped.
	if p.Samples != 37 || len(p.Dropped) != 0 {
		t.Errorf("samples %d, dropped %v; want 37 and none", p.Samples, p.Dropped)
	}
}

// The A100 fixture: exported_ pod labels, lowercase hostname and uuid, and
// one of each kind of bad sample.
func TestParseExportedLabelsAndBadSamples(t *testing.T) {
	p := parseFile(t, filepath.Join("testdata", "a100-exported-labels.txt"))
	const model, host = "NVIDIA A100-SXM4-40GB", "dcgm-exporter-x7k2p"
	id := func(uuid, gpu, profile string, gi int) Identity {
		return Identity{UUID: uuid, GPU: gpu, Model: model, Hostname: host, Profile: profile, GPUInstanceID: gi}
	}
	checkReadings(t, p.Readings, []want{
		{
			id:     id(a100GPU0, "0", "3g.20gb", 1),
			pods:   []Pod{{"hub-bob", "jupyter-bob", "notebook"}},
			values: map[Field]float64{GraphicsActive: 0.7312, TensorActive: 0.25, FBUsed: 10240 * mib},
		},
		{
			id:     id(a100GPU0, "0", "2g.10gb", 5),
			pods:   []Pod{{"cms", "reco-batch-1", "main"}},
			values: map[Field]float64{DRAMActive: 0.33},
		},
		{id: id(a100GPU0, "0", "1g.5gb", 13), values: map[Field]float64{GraphicsActive: 0}},
		{
			id:   id(a100GPU1, "1", "", -1),
			pods: []Pod{{"cms", "reco-batch-1", "main"}, {"cms", "reco-batch-2", "main"}},
			// 1.0004 is within the rounding slack and read as 1.
			values: map[Field]float64{GraphicsActive: 0.4, TensorActive: 1, GPUUtil: 0.42, Energy: 5000},
		},
	})
	wantDropped := map[string]int{ReasonNaN: 3, ReasonBadLabel: 1, ReasonConflict: 1, ReasonNoUUID: 1,
		ReasonDuplicate: 1, ReasonOutOfRange: 2}
	if !maps.Equal(p.Dropped, wantDropped) {
		t.Errorf("dropped %v, want %v", p.Dropped, wantDropped)
	}
	if p.Samples != 9 {
		t.Errorf("samples %d, want 9", p.Samples)
	}
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(b []byte) (int, error) {
	const line = "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-0\"} 1\n"
	for i := range b {
		b[i] = line[i%len(line)]
	}
	return len(b), nil
}

type failing struct{}

var errDisk = errors.New("connection reset")

func (failing) Read([]byte) (int, error) { return 0, errDisk }

func TestParseBadBodies(t *testing.T) {
	h100, err := os.ReadFile(filepath.Join("testdata", "h100-mig-node.txt"))
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string) io.Reader {
		f, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	cases := []struct {
		name  string
		body  io.Reader
		limit int64
		want  error
	}{
		{"html error page", file("garbage.html"), 0, ErrBadBody},
		{"truncated mid-line", file("truncated.txt"), 0, ErrBadBody},
		{"binary", strings.NewReader("\x00\x01\xff\xfe"), 0, ErrBadBody},
		{"no final newline", strings.NewReader("DCGM_FI_DEV_GPU_UTIL{UUID=\"GPU-0\"} 1"), 0, ErrBadBody},
		{"second TYPE line", strings.NewReader("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{UUID=\"GPU-0\"} 1\n# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"), 0, ErrBadBody},
		{"other exporter", file("not-dcgm.txt"), 0, ErrNoDCGM},
		{"empty", strings.NewReader(""), 0, ErrNoDCGM},
		{"one byte over the limit", strings.NewReader(string(h100)), int64(len(h100) - 1), ErrBodyTooLarge},
		{"endless, default limit", endless{}, 0, ErrBodyTooLarge},
		{"read error", failing{}, 0, errDisk},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(c.body, c.limit)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if p != nil {
				t.Errorf("kept %d readings from a bad body", len(p.Readings))
			}
		})
	}
	if p, err := Parse(strings.NewReader(string(h100)), int64(len(h100))); err != nil || len(p.Readings) != 6 {
		t.Errorf("body exactly at the limit: err %v", err)
	}
}

func TestFieldConvert(t *testing.T) {
	cases := []struct {
		field  Field
		raw    float64
		want   float64
		reason string
	}{
		{GPUUtil, 50, 0.5, ""},
		{GPUUtil, 100, 1, ""},
		{GPUUtil, 100.05, 1, ""}, // rounding slack
		{GPUUtil, 101, 0, ReasonOutOfRange},
		{GraphicsActive, 0.25, 0.25, ""},
		{GraphicsActive, 1.0009, 1, ""},
		{GraphicsActive, 1.01, 0, ReasonOutOfRange},
		{GraphicsActive, -0.01, 0, ReasonOutOfRange},
		{GraphicsActive, math.Copysign(0, -1), 0, ""},
		{FBUsed, 1, mib, ""},
		{FBFree, 0, 0, ""},
		{FBUsed, 1e308, 0, ReasonOutOfRange}, // overflows once in bytes
		{Energy, 1500, 1.5, ""},
		{Power, 8.969, 8.969, ""},
		{XID, 79, 79, ""},
		{Power, math.NaN(), 0, ReasonNaN},
		{Power, math.Inf(1), 0, ReasonNaN},
		{Energy, math.Inf(-1), 0, ReasonNaN},
	}
	for _, c := range cases {
		v, reason, ok := c.field.convert(c.raw)
		if reason != c.reason || ok != (c.reason == "") || v != c.want || math.Signbit(v) {
			t.Errorf("%s.convert(%v) = %v, %q, %v; want %v, %q", c.field, c.raw, v, reason, ok, c.want, c.reason)
		}
	}
}

func TestParseTypes(t *testing.T) {
	body := `# TYPE DCGM_FI_DEV_POWER_USAGE counter
DCGM_FI_DEV_POWER_USAGE{UUID="GPU-a"} 100
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{UUID="GPU-a"} 20
DCGM_FI_PROF_SM_ACTIVE{UUID="GPU-a"} 0.5
# TYPE DCGM_FI_DEV_XID_ERRORS histogram
DCGM_FI_DEV_XID_ERRORS_bucket{UUID="GPU-a",le="+Inf"} 1
DCGM_FI_DEV_XID_ERRORS_sum{UUID="GPU-a"} 1
DCGM_FI_DEV_XID_ERRORS_count{UUID="GPU-a"} 1
`
	p, err := Parse(strings.NewReader(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, p.Readings, []want{{
		id:     Identity{UUID: "GPU-a", GPUInstanceID: -1},
		values: map[Field]float64{Power: 100, GPUUtil: 0.2, SMActive: 0.5},
	}})
	if !maps.Equal(p.Dropped, map[string]int{ReasonBadType: 1}) {
		t.Errorf("dropped %v, want one bad_type", p.Dropped)
	}
}

func TestParseLimits(t *testing.T) {
	var b strings.Builder
	for i := range MaxDevices + 5 {
		fmt.Fprintf(&b, "DCGM_FI_DEV_POWER_USAGE{UUID=\"GPU-%05d\"} 1\n", i)
	}
	for i := range MaxPods + 10 {
		fmt.Fprintf(&b, "DCGM_FI_DEV_GPU_UTIL{UUID=\"GPU-00000\",namespace=\"ns\",pod=\"p%03d\"} 1\n", i)
	}
	p, err := Parse(strings.NewReader(b.String()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Readings) != MaxDevices || p.Dropped[ReasonTooManyDevices] != 5 {
		t.Errorf("%d readings, %d dropped as too many; want %d and 5", len(p.Readings), p.Dropped[ReasonTooManyDevices], MaxDevices)
	}
	if got := len(p.Readings[0].Pods); got != MaxPods {
		t.Errorf("%d pods kept, want %d", got, MaxPods)
	}
}

func TestLabelPrefersExported(t *testing.T) {
	body := `DCGM_FI_DEV_GPU_UTIL{UUID="GPU-a",exported_UUID="GPU-b",Hostname="h1",hostname="h2",pod="scraper",exported_pod="work",namespace="mon"} 1
`
	p, err := Parse(strings.NewReader(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, p.Readings, []want{{
		id:     Identity{UUID: "GPU-b", Hostname: "h1", GPUInstanceID: -1},
		pods:   []Pod{{Namespace: "mon", Name: "work"}},
		values: map[Field]float64{GPUUtil: 0.01},
	}})
}

func TestFieldNames(t *testing.T) {
	names := map[string]bool{}
	for _, f := range Fields() {
		if names[f.String()] || !strings.HasPrefix(f.String(), "DCGM_FI_") {
			t.Errorf("field %d named %q", f, f)
		}
		names[f.String()] = true
	}
	if len(names) != int(numFields) {
		t.Errorf("%d field names, want %d", len(names), numFields)
	}
	if Field(-1).String() != "unknown" || numFields.String() != "unknown" {
		t.Error("an out-of-range field has a name")
	}
	if !slices.IsSorted(Reasons()) {
		t.Error("Reasons() not sorted")
	}
}

func BenchmarkParseH100(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "h100-mig-node.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(string(body)), 0); err != nil {
			b.Fatal(err)
		}
	}
}
