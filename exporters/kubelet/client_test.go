package kubelet_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gpuledger/gpuledger/exporters/kubelet"
	"github.com/gpuledger/gpuledger/exporters/kubelet/kubelettest"
	"github.com/gpuledger/gpuledger/internal/testlog"
)

const (
	gpu0 = "GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"
	gpu1 = "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
)

// socketPath returns a socket path in a fresh temporary directory.
func socketPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubelet.sock")
	if len(p) > 100 {
		t.Skipf("temporary directory too deep for a unix socket: %s", p)
	}
	return p
}

func startServer(t *testing.T, path string) *kubelettest.Server {
	t.Helper()
	srv, err := kubelettest.Start(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

func newClient(t *testing.T, opts kubelet.Options) *kubelet.Client {
	t.Helper()
	c, err := kubelet.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// podNames lists a snapshot's pods as namespace/name.
func podNames(s *kubelet.Snapshot) []string {
	var out []string
	for _, p := range s.Pods {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out
}

func TestClientList(t *testing.T) {
	path := socketPath(t)
	srv := startServer(t, path)
	srv.Set(
		kubelettest.Assignment{Namespace: "hub", Pod: "jupyter-alice", Container: "notebook", Resource: "nvidia.com/gpu", IDs: []string{gpu1}},
		kubelettest.Assignment{Namespace: "cms", Pod: "train", Container: "main", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu0 + "::0", gpu0 + "::1"}},
		kubelettest.Assignment{Namespace: "cms", Pod: "train", Container: "side", Resource: "amd.com/xilinx_u55c", IDs: []string{"0000:3b:00.1"}},
		kubelettest.Assignment{Namespace: "cms", Pod: "cpu-only", Container: "main", Resource: "nvidia.com/gpu", IDs: nil},
	)
	srv.SetAllocatable(map[string][]string{
		"nvidia.com/gpu":        {gpu1},
		"nvidia.com/gpu.shared": {gpu0 + "::0", gpu0 + "::1", gpu0 + "::2", gpu0 + "::3"},
	})
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	c := newClient(t, kubelet.Options{Socket: path, Now: func() time.Time { return now }})
	if s := c.Snapshot(); s.Available() || s.Pods != nil {
		t.Fatalf("snapshot before the first poll: %+v", s)
	}
	if err := c.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot()
	if !s.Available() || s.Stale || s.Err != nil || !s.At.Equal(now) || !s.Polled.Equal(now) {
		t.Fatalf("snapshot state %+v", s)
	}
	if got, want := podNames(s), []string{"cms/train", "hub/jupyter-alice"}; !slices.Equal(got, want) {
		t.Errorf("pods %v, want %v (sorted, pods without devices dropped)", got, want)
	}
	train := s.Pods[0]
	if len(train.Containers) != 2 || train.Containers[0].Name != "main" ||
		!slices.Equal(train.Containers[0].Devices[0].IDs, []string{gpu0 + "::0", gpu0 + "::1"}) ||
		train.Containers[1].Devices[0].Resource != "amd.com/xilinx_u55c" {
		t.Errorf("cms/train: %+v", train)
	}
	if got := s.Replicas("nvidia.com/gpu.shared", gpu0); got != 4 {
		t.Errorf("replicas of %s: %d, want 4", gpu0, got)
	}
	if got := s.Replicas("nvidia.com/gpu", gpu1); got != 1 {
		t.Errorf("replicas of %s: %d, want 1", gpu1, got)
	}
	if got := s.Replicas("nvidia.com/gpu", gpu0); got != 0 {
		t.Errorf("replicas of an unknown device: %d, want 0", got)
	}
}

func TestClientAllocatableUnimplemented(t *testing.T) {
	path := socketPath(t)
	srv := startServer(t, path)
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "p", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	srv.SetAllocatable(nil)
	c := newClient(t, kubelet.Options{Socket: path})
	if err := c.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot()
	if s.Allocatable != nil || s.Replicas("nvidia.com/gpu", gpu0) != 0 {
		t.Errorf("allocatable %v from a kubelet that does not serve it", s.Allocatable)
	}
	if len(s.Pods) != 1 {
		t.Errorf("pods %v", podNames(s))
	}
}

// bigAnswer is a List answer of n pods, well over 4 MiB for n in the
// thousands.
func bigAnswer(n int) []kubelettest.Assignment {
	as := make([]kubelettest.Assignment, 0, n)
	pad := strings.Repeat("x", 200)
	for i := range n {
		ids := make([]string, 8)
		for k := range ids {
			ids[k] = fmt.Sprintf("GPU-%08x-0000-0000-0000-%012x::%d", i, k, k)
		}
		as = append(as, kubelettest.Assignment{Namespace: "batch", Pod: fmt.Sprintf("job-%06d-%s", i, pad),
			Container: "worker-" + pad, Resource: "nvidia.com/gpu.shared", IDs: ids})
	}
	return as
}

func TestClientLargeAnswer(t *testing.T) {
	const pods = 6000
	path := socketPath(t)
	srv := startServer(t, path)
	as := bigAnswer(pods)
	srv.Set(as...)
	if size := proto.Size(kubelettest.Response(as...)); size <= 4<<20 {
		t.Fatalf("answer of %d bytes does not exceed gRPC's 4 MiB default", size)
	}

	// gRPC's default limit refuses it…
	small := newClient(t, kubelet.Options{Socket: path, MaxRecvMsgSize: 4 << 20})
	if err := small.Poll(t.Context()); !errors.Is(err, kubelet.ErrCall) || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("poll with a 4 MiB limit: %v, want a ResourceExhausted call error", err)
	}
	// …the default receives it intact.
	c := newClient(t, kubelet.Options{Socket: path})
	if err := c.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot()
	if len(s.Pods) != pods {
		t.Fatalf("%d pods, want %d", len(s.Pods), pods)
	}
	for i, p := range s.Pods {
		want := as[i] // already sorted by name
		if p.Name != want.Pod || len(p.Containers) != 1 || p.Containers[0].Name != want.Container ||
			!slices.Equal(p.Containers[0].Devices[0].IDs, want.IDs) {
			t.Fatalf("pod %d: %+v, want %+v", i, p, want)
		}
	}
}

func TestClientHungKubelet(t *testing.T) {
	path := socketPath(t)
	srv := startServer(t, path)
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "p", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	logger, logs := testlog.New(slog.LevelInfo)
	c := newClient(t, kubelet.Options{Socket: path, Timeout: 50 * time.Millisecond, Logger: logger})
	if err := c.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := c.Snapshot()

	srv.SetHang(true)
	for range 2 {
		if err := c.Poll(t.Context()); !errors.Is(err, kubelet.ErrTimeout) {
			t.Fatalf("poll of a hung kubelet: %v, want ErrTimeout", err)
		}
	}
	s := c.Snapshot()
	if !s.Stale || s.Available() || !errors.Is(s.Err, kubelet.ErrTimeout) {
		t.Errorf("snapshot of a hung kubelet: %+v", s)
	}
	if !s.At.Equal(good.At) || !slices.Equal(podNames(s), []string{"a/p"}) {
		t.Errorf("last good answer lost: %+v", s)
	}
	if n := logs.Count("state=timeout"); n != 1 {
		t.Errorf("timeout logged %d times, want once:\n%s", n, logs.String())
	}

	srv.SetHang(false)
	if err := c.Poll(t.Context()); err != nil {
		t.Fatalf("poll after the kubelet recovered: %v", err)
	}
	if s := c.Snapshot(); !s.Available() {
		t.Errorf("snapshot after recovery: %+v", s)
	}
	if n := logs.Count("answering"); n != 2 {
		t.Errorf("recovery logged %d times in total, want twice (start, recovery):\n%s", n, logs.String())
	}
}

func TestClientSocketAppears(t *testing.T) {
	path := socketPath(t)
	logger, logs := testlog.New(slog.LevelInfo)
	c := newClient(t, kubelet.Options{Socket: path, Logger: logger})
	for range 3 {
		if err := c.Poll(t.Context()); !errors.Is(err, kubelet.ErrNoSocket) {
			t.Fatalf("poll without a socket: %v, want ErrNoSocket", err)
		}
	}
	if s := c.Snapshot(); !s.Stale || !s.At.IsZero() || s.Available() || !errors.Is(s.Err, kubelet.ErrNoSocket) {
		t.Errorf("snapshot without a socket: %+v", s)
	}
	if n := logs.Count(`state="no socket"`); n != 1 {
		t.Errorf("missing socket logged %d times, want once:\n%s", n, logs.String())
	}

	srv := startServer(t, path)
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "p", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	if err := c.Poll(t.Context()); err != nil {
		t.Fatalf("poll once the socket appeared: %v", err)
	}
	if s := c.Snapshot(); !s.Available() || !slices.Equal(podNames(s), []string{"a/p"}) {
		t.Errorf("snapshot once the socket appeared: %+v", s)
	}
}

func TestClientServerRestart(t *testing.T) {
	path := socketPath(t)
	srv := startServer(t, path)
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "before", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	c := newClient(t, kubelet.Options{Socket: path})
	if err := c.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Restarted between two polls: the next poll reaches the new server.
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "after", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Poll(t.Context()); err != nil {
		t.Fatalf("poll after a restart: %v", err)
	}
	if got := podNames(c.Snapshot()); !slices.Equal(got, []string{"a/after"}) {
		t.Errorf("pods after a restart: %v", got)
	}

	// Down for a while: stale, then back.
	srv.Stop()
	if err := c.Poll(t.Context()); !errors.Is(err, kubelet.ErrNoSocket) {
		t.Fatalf("poll of a stopped kubelet: %v, want ErrNoSocket", err)
	}
	if s := c.Snapshot(); !s.Stale || !slices.Equal(podNames(s), []string{"a/after"}) {
		t.Errorf("snapshot of a stopped kubelet: %+v", s)
	}
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "again", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Poll(t.Context()); err != nil {
		t.Fatalf("poll after the kubelet came back: %v", err)
	}
	if s := c.Snapshot(); !s.Available() || !slices.Equal(podNames(s), []string{"a/again"}) {
		t.Errorf("snapshot after the kubelet came back: %+v", s)
	}
}

func TestClientStartClose(t *testing.T) {
	path := socketPath(t)
	srv := startServer(t, path)
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "p", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	c := newClient(t, kubelet.Options{Socket: path, Interval: time.Hour})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	<-c.Updates() // the first poll, at start
	if s := c.Snapshot(); !s.Available() || len(s.Pods) != 1 {
		t.Errorf("snapshot after the first background poll: %+v", s)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Poll(t.Context()); !errors.Is(err, kubelet.ErrClosed) {
		t.Errorf("poll after Close: %v, want ErrClosed", err)
	}
	if err := c.Start(t.Context()); !errors.Is(err, kubelet.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if s := c.Snapshot(); len(s.Pods) != 1 {
		t.Errorf("snapshot lost at Close: %+v", s)
	}
}

func TestClientCancelledPoll(t *testing.T) {
	path := socketPath(t)
	srv := startServer(t, path)
	srv.Set(kubelettest.Assignment{Namespace: "a", Pod: "p", Container: "c", Resource: "nvidia.com/gpu", IDs: []string{gpu0}})
	c := newClient(t, kubelet.Options{Socket: path})
	if err := c.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.SetHang(true)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Poll(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled poll: %v", err)
	}
	if s := c.Snapshot(); s.Stale {
		t.Errorf("a cancelled poll marked the snapshot stale: %+v", s)
	}
}

func TestNewRejectsNegative(t *testing.T) {
	for _, o := range []kubelet.Options{{Interval: -1}, {Timeout: -1}, {MaxRecvMsgSize: -1}} {
		if _, err := kubelet.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	c, err := kubelet.New(kubelet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket() != kubelet.DefaultSocket || c.Interval() != kubelet.DefaultInterval {
		t.Errorf("defaults: socket %s interval %s", c.Socket(), c.Interval())
	}
}
