package dcgm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/node"
	"github.com/gpuledger/gpuledger/sim/clock"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// server is a dcgm-exporter stand-in whose answer the test changes.
type server struct {
	mu      sync.Mutex
	handler http.HandlerFunc
}

func newServer(t *testing.T, h http.HandlerFunc) (*server, *httptest.Server) {
	t.Helper()
	s := &server{handler: h}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.handler
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(ts.Close)
	return s, ts
}

func (s *server) set(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

func serveFile(t *testing.T, name string) http.HandlerFunc {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(body)
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "DCGM host engine unreachable", code)
	}
}

// h100Inventory is what an NVML source would publish for the H100 node:
// GPU 0 in MIG mode with instances 2, 3 and 9 (two compute instances) but
// not 10, GPU 1 whole.
func h100Inventory() *node.Inventory {
	inv := node.NewInventory()
	mig := func(id string, gi, ci int, profile string) node.Device {
		return node.Device{ID: id, Class: accounting.ClassMIG, GPUUUID: h100GPU0, GPU: "0", Model: "NVIDIA H100 80GB HBM3",
			Profile: profile, GPUInstanceID: gi, ComputeInstanceID: ci, WeightMilli: 143}
	}
	inv.SetDevices("nvml", []node.Device{
		mig("MIG-0a3f2e6c-5b1d-5c8e-9f47-3d2a1b0c9e81", 2, 0, "3g.40gb"),
		mig("MIG-1b4e3f7d-6c2e-5d9f-8e56-4e3b2c1d0f92", 3, 0, "2g.20gb"),
		mig("MIG-2c5f4a8e-7d3f-5ea0-9d65-5f4c3d2e1aa3", 9, 1, "1g.10gb"),
		mig("MIG-3d6a5b9f-8e4a-5fb1-8c74-6a5d4e3f2bb4", 9, 0, "1g.10gb"),
		{ID: h100GPU1, Class: accounting.ClassGPU, GPUUUID: h100GPU1, GPU: "1", Model: "NVIDIA H100 80GB HBM3",
			GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000},
	})
	return inv
}

func newSource(t *testing.T, url string, inv *node.Inventory, clk *clock.Manual, mod func(*Options)) *Source {
	t.Helper()
	opts := Options{URL: url, Node: "gpu-h100-07", Interval: 10 * time.Second, Timeout: 5 * time.Second,
		Inventory: inv, Now: clk.Now}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPollKeysDevices(t *testing.T) {
	_, ts := newServer(t, serveFile(t, "h100-mig-node.txt"))
	inv := h100Inventory()
	clk := clock.NewManual(t0)
	s := newSource(t, ts.URL+"/metrics", inv, clk, nil)
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap, fresh := s.Latest()
	if snap == nil || !fresh || !snap.At.Equal(t0) {
		t.Fatalf("snapshot %v, fresh %v; want one read at %s", snap, fresh, t0)
	}
	type key struct {
		key        string
		resolved   bool
		migDevices []string
		profile    string
	}
	var got []key
	for _, d := range snap.Devices {
		got = append(got, key{d.Key, d.Resolved, d.MIGDevices, d.Profile})
	}
	want := []key{
		{h100GPU0, true, nil, ""},
		{"MIG-0a3f2e6c-5b1d-5c8e-9f47-3d2a1b0c9e81", true, []string{"MIG-0a3f2e6c-5b1d-5c8e-9f47-3d2a1b0c9e81"}, "3g.40gb"},
		{"MIG-1b4e3f7d-6c2e-5d9f-8e56-4e3b2c1d0f92", true, []string{"MIG-1b4e3f7d-6c2e-5d9f-8e56-4e3b2c1d0f92"}, "2g.20gb"},
		// Two compute instances: keyed by the first, both get the activity.
		{"MIG-3d6a5b9f-8e4a-5fb1-8c74-6a5d4e3f2bb4", true, []string{"MIG-3d6a5b9f-8e4a-5fb1-8c74-6a5d4e3f2bb4", "MIG-2c5f4a8e-7d3f-5ea0-9d65-5f4c3d2e1aa3"}, "1g.10gb"},
		{h100GPU0 + "/gi10", false, nil, "1g.10gb"},
		{h100GPU1, true, nil, ""},
	}
	if !slices.EqualFunc(got, want, func(a, b key) bool {
		return a.key == b.key && a.resolved == b.resolved && slices.Equal(a.migDevices, b.migDevices) && a.profile == b.profile
	}) {
		t.Errorf("keys:\n got %v\nwant %v", got, want)
	}
	if snap.Dropped[ReasonUnresolved] != 1 {
		t.Errorf("dropped %v, want one unresolved", snap.Dropped)
	}

	wantActivity := map[string]float64{
		"MIG-0a3f2e6c-5b1d-5c8e-9f47-3d2a1b0c9e81": 0.912345,
		"MIG-1b4e3f7d-6c2e-5d9f-8e56-4e3b2c1d0f92": 0.054321,
		"MIG-2c5f4a8e-7d3f-5ea0-9d65-5f4c3d2e1aa3": 0,
		"MIG-3d6a5b9f-8e4a-5fb1-8c74-6a5d4e3f2bb4": 0,
		h100GPU1: 0.8733, // graphics activity, not GPU_UTIL (0.87)
	}
	for id, w := range wantActivity {
		a, ok := inv.Activity(id, t0, time.Minute)
		if !ok || a.Ratio != w || a.Source != InventorySource || !a.At.Equal(t0) {
			t.Errorf("activity of %s = %+v, %v; want %v from dcgm at %s", id, a, ok, w, t0)
		}
	}
	// The MIG-mode GPU itself has neither graphics activity nor GPU_UTIL,
	// and the unresolved instance has no device ID.
	for _, id := range []string{h100GPU0, h100GPU0 + "/gi10"} {
		if a, ok := inv.Activity(id, t0, time.Minute); ok {
			t.Errorf("activity published for %s: %+v", id, a)
		}
	}
}

func TestPollWithoutInventory(t *testing.T) {
	_, ts := newServer(t, serveFile(t, "h100-mig-node.txt"))
	s := newSource(t, ts.URL, nil, clock.NewManual(t0), func(o *Options) { o.Inventory = nil })
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Latest()
	if snap.Dropped[ReasonUnresolved] != 4 {
		t.Errorf("dropped %v, want the four MIG instances unresolved", snap.Dropped)
	}
}

func TestPublishFallsBackToGPUUtil(t *testing.T) {
	body := `DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-t4"} 37
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-a30",GPU_I_PROFILE="1g.6gb",GPU_I_ID="3"} 50
DCGM_FI_DEV_FB_USED{gpu="2",UUID="GPU-idle"} 0
`
	_, ts := newServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) })
	inv := node.NewInventory()
	inv.SetDevices("nvml", []node.Device{{ID: "MIG-a30-3", Class: accounting.ClassMIG, GPUUUID: "GPU-a30",
		GPUInstanceID: 3, ComputeInstanceID: 0}})
	s := newSource(t, ts.URL, inv, clock.NewManual(t0), nil)
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if a, ok := inv.Activity("GPU-t4", t0, time.Minute); !ok || a.Ratio != 0.37 {
		t.Errorf("whole GPU without profiling: activity %+v, %v; want GPU_UTIL/100 = 0.37", a, ok)
	}
	// A MIG instance has no fallback: GPU_UTIL is a whole-GPU measure.
	for _, id := range []string{"MIG-a30-3", "GPU-idle"} {
		if a, ok := inv.Activity(id, t0, time.Minute); ok {
			t.Errorf("activity published for %s: %+v", id, a)
		}
	}
}

func TestPollFailuresKeepLastSnapshot(t *testing.T) {
	big := strings.Repeat("DCGM_FI_DEV_GPU_UTIL{UUID=\"GPU-0\"} 1\n", 2000)
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    error  // matched with errors.Is, when set
		text    string // in the error's text, when set
	}{
		{"server error", status(http.StatusInternalServerError), nil, "500 Internal Server Error: DCGM host engine unreachable"},
		{"not found", status(http.StatusNotFound), nil, "404 Not Found"},
		{"garbage", serveFile(t, "garbage.html"), ErrBadBody, ""},
		{"truncated", serveFile(t, "truncated.txt"), ErrBadBody, ""},
		{"not dcgm", serveFile(t, "not-dcgm.txt"), ErrNoDCGM, ""},
		{"oversized", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(big)) }, ErrBodyTooLarge, ""},
		{"hung before headers", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, context.DeadlineExceeded, ""},
		{"hung mid-body", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("DCGM_FI_DEV_GPU_UTIL{UUID=\"GPU-0\"} 1\nDCGM_FI_DEV"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, context.DeadlineExceeded, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, ts := newServer(t, serveFile(t, "h100-mig-node.txt"))
			clk := clock.NewManual(t0)
			s := newSource(t, ts.URL, h100Inventory(), clk, func(o *Options) {
				o.Timeout = 200 * time.Millisecond
				o.MaxBodyBytes = int64(len(big)) - 1
			})
			if err := s.Poll(t.Context()); err != nil {
				t.Fatal(err)
			}
			good, _ := s.Latest()
			srv.set(c.handler)
			clk.Set(t0.Add(10 * time.Second))
			err := s.Poll(t.Context())
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err = %v, want %v %q", err, c.want, c.text)
			}
			snap, fresh := s.Latest()
			if snap != good || !fresh {
				t.Errorf("after a failed poll: snapshot %p (fresh %v), want the last good one %p, fresh", snap, fresh, good)
			}
		})
	}
}

func TestPollSlowButInTime(t *testing.T) {
	_, ts := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select { // answer late, well within the timeout
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
		serveFile(t, "h100-mig-node.txt")(w, r)
	})
	s := newSource(t, ts.URL, h100Inventory(), clock.NewManual(t0), func(o *Options) { o.Timeout = 30 * time.Second })
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if snap, _ := s.Latest(); snap == nil || len(snap.Devices) != 6 {
		t.Errorf("snapshot %v, want the six devices", snap)
	}
}

func TestPollUnreachable(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	s := newSource(t, url, nil, clock.NewManual(t0), nil)
	if err := s.Poll(t.Context()); err == nil || !strings.Contains(err.Error(), url) {
		t.Errorf("err = %v, want one naming %s", err, url)
	}
	if snap, fresh := s.Latest(); snap != nil || fresh {
		t.Errorf("snapshot %v (fresh %v) without a successful poll", snap, fresh)
	}
}

// A scrape never waits for a poll: while the dcgm-exporter hangs, Update
// answers from memory.
func TestUpdateDoesNotWaitForAHungPoll(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	_, ts := newServer(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	s := newSource(t, ts.URL, nil, clock.NewManual(t0), func(o *Options) { o.Timeout = time.Minute })
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-entered
	ch := make(chan prometheus.Metric, 64)
	err := s.Update(ch)
	if !errors.Is(err, collector.ErrNoData) {
		t.Errorf("Update during the first poll: err = %v, want ErrNoData", err)
	}
	if len(ch) == 0 {
		t.Error("Update sent no health series")
	}
	// Close cancels the hung poll, which is not taken for a failure of
	// the dcgm-exporter.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(make(chan prometheus.Metric, 64)); !errors.Is(err, collector.ErrNoData) {
		t.Errorf("after Close during the first poll: err = %v, want ErrNoData", err)
	}
}

func TestStartClose(t *testing.T) {
	_, ts := newServer(t, serveFile(t, "h100-mig-node.txt"))
	s := newSource(t, ts.URL, nil, clock.NewManual(t0), nil)
	polled := make(chan error, 1)
	s.afterPoll = func(err error) {
		select {
		case polled <- err:
		default:
		}
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-polled; err != nil {
		t.Fatalf("first background poll: %v", err)
	}
	if snap, _ := s.Latest(); snap == nil {
		t.Fatal("no snapshot after the first background poll")
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("Start after Close succeeded")
	}
	if snap, _ := s.Latest(); snap == nil {
		t.Error("Close dropped the snapshot")
	}
}

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		text string
	}{
		{"no URL", Options{Node: "n"}, "--dcgm-exporter-url"},
		{"not http", Options{URL: "ftp://localhost:9400/metrics", Node: "n"}, "http(s)"},
		{"no host", Options{URL: "http:///metrics", Node: "n"}, "http(s)"},
		{"bad URL", Options{URL: "http://[::1", Node: "n"}, "URL"},
		{"no node", Options{URL: "http://localhost:9400/metrics"}, "node"},
		{"negative interval", Options{URL: "http://localhost:9400/metrics", Node: "n", Interval: -time.Second}, "negative"},
	}
	for _, c := range cases {
		if _, err := New(c.opts); err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: err = %v, want one mentioning %q", c.name, err, c.text)
		}
	}
	s, err := New(Options{URL: "https://localhost:9400/metrics", Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if s.interval != DefaultInterval || s.timeout != DefaultTimeout || s.limit != DefaultMaxBodyBytes {
		t.Errorf("defaults: interval %s, timeout %s, limit %d", s.interval, s.timeout, s.limit)
	}
}
