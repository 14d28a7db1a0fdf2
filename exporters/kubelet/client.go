// Package kubelet is a client of the kubelet's pod-resources API v1
// (k8s.io/kubelet/pkg/apis/podresources/v1): which pod and container of
// the node holds which device ID under which extended resource. The API is
// polled in the background over its unix socket; readers get the latest
// answer from memory and never wait. When the socket is missing, the
// kubelet hangs or answers an error, the last good answer is kept and
// marked stale, and the change of state is logged once.
//
// ParseDeviceID reads the device IDs the NVIDIA and AMD/Xilinx device
// plugins hand out.
package kubelet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	podresv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/gpuledger/gpuledger/accounting"
)

// Defaults of Options.
const (
	DefaultSocket   = "/var/lib/kubelet/pod-resources/kubelet.sock"
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 5 * time.Second
	// DefaultMaxRecvMsgSize bounds one answer. gRPC's own default, 4 MiB,
	// is exceeded by the List answer of a busy node.
	DefaultMaxRecvMsgSize = 64 << 20
)

// Errors of Poll, also kept in Snapshot.Err.
var (
	// ErrNoSocket: the pod-resources socket does not exist (the kubelet
	// is not running, or the socket is not mounted into the pod).
	ErrNoSocket = errors.New("pod-resources socket absent")
	// ErrTimeout: the kubelet did not answer within the timeout.
	ErrTimeout = errors.New("pod-resources call timed out")
	// ErrCall: the kubelet answered with an error, or the connection
	// failed.
	ErrCall = errors.New("pod-resources call failed")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("kubelet client closed")
)

// Options tune a Client. Zero values take the defaults.
type Options struct {
	// Socket is the path of the pod-resources unix socket.
	Socket string
	// Interval is the time between two polls.
	Interval time.Duration
	// Timeout bounds each call to the kubelet.
	Timeout time.Duration
	// MaxRecvMsgSize bounds one answer, in bytes.
	MaxRecvMsgSize int
	// Logger receives state changes; nil discards them.
	Logger *slog.Logger
	// Now is the clock stamping the answers; nil is time.Now.
	Now func() time.Time
}

// Snapshot is one state of the client: the kubelet's last good answer and
// how the last poll went. It is shared between readers: treat it, and
// everything it holds, as read-only.
type Snapshot struct {
	// Pods are the pods of the last good answer holding at least one
	// device, sorted by namespace and name; only containers holding
	// devices are kept.
	Pods []Pod
	// Allocatable counts the allocatable device IDs of each physical
	// device by resource: resource → device ID without replica suffix →
	// number of IDs. For a time-sliced GPU it is the number of replicas
	// the device plugin advertises. Nil when the kubelet does not serve
	// GetAllocatableResources.
	Allocatable map[string]map[string]int
	// At is when the last good answer was received; zero before the
	// first.
	At time.Time
	// Polled is when the last poll ended, good or not.
	Polled time.Time
	// Stale is true when the last poll failed: Pods is then an older
	// answer (or none).
	Stale bool
	// Err is the last poll's error (nil when it succeeded), wrapping
	// ErrNoSocket, ErrTimeout or ErrCall.
	Err error
}

// Available reports whether the kubelet answered the last poll.
func (s *Snapshot) Available() bool { return !s.At.IsZero() && !s.Stale }

// Replicas returns how many device IDs the kubelet advertises as
// allocatable for the physical device base under resource (the
// time-slicing replicas of a GPU); 0 when unknown.
func (s *Snapshot) Replicas(resource, base string) int { return s.Allocatable[resource][base] }

// Pod is a pod of the node and the devices its containers hold.
type Pod struct {
	Namespace, Name string
	Containers      []Container
}

// Container is a container and the devices it holds.
type Container struct {
	Name    string
	Devices []Devices
}

// Devices are the device IDs a container holds under one resource.
type Devices struct {
	Resource string
	IDs      []string
}

// Client polls the pod-resources API. Snapshot never blocks. It is safe
// for concurrent use.
type Client struct {
	socket   string
	interval time.Duration
	timeout  time.Duration
	maxRecv  int
	logger   *slog.Logger
	now      func() time.Time

	snap    atomic.Pointer[Snapshot]
	updates chan struct{}

	pollMu     sync.Mutex // serialises polls; guards the four fields below
	conn       *grpc.ClientConn
	state      string // "", "ok", or the failure kind last logged
	allocState string // "", "ok", "unimplemented", "failed"
	closed     bool

	startMu sync.Mutex // guards cancel and done
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a client; it connects on the first poll. Start polls in the
// background, Poll once.
func New(opts Options) (*Client, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	sock, err := filepath.Abs(opts.Socket)
	if err != nil {
		return nil, fmt.Errorf("kubelet socket %s: %w", opts.Socket, err)
	}
	if opts.Interval < 0 || opts.Timeout < 0 || opts.MaxRecvMsgSize < 0 {
		return nil, fmt.Errorf("kubelet client: negative interval %s, timeout %s or message size %d",
			opts.Interval, opts.Timeout, opts.MaxRecvMsgSize)
	}
	c := &Client{socket: sock, interval: cmp.Or(opts.Interval, DefaultInterval), timeout: cmp.Or(opts.Timeout, DefaultTimeout),
		maxRecv: cmp.Or(opts.MaxRecvMsgSize, DefaultMaxRecvMsgSize), logger: opts.Logger, now: opts.Now,
		updates: make(chan struct{}, 1)}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.logger = c.logger.With("socket", sock)
	if c.now == nil {
		c.now = time.Now
	}
	c.snap.Store(&Snapshot{})
	return c, nil
}

// Socket returns the absolute path of the socket polled.
func (c *Client) Socket() string { return c.socket }

// Interval returns the time between two polls.
func (c *Client) Interval() time.Duration { return c.interval }

// Snapshot returns the latest state. It never blocks and never returns nil.
func (c *Client) Snapshot() *Snapshot { return c.snap.Load() }

// Updates returns a channel that receives a value after each poll (one
// pending value at most): a consumer reads Snapshot when it fires.
func (c *Client) Updates() <-chan struct{} { return c.updates }

// Start polls now and then every interval in the background, until ctx
// ends or Close is called. It fails when the client is closed or already
// started.
func (c *Client) Start(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.isClosed() {
		return ErrClosed
	}
	if c.done != nil {
		return errors.New("kubelet client already started")
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go c.loop(ctx, c.done)
	return nil
}

func (c *Client) loop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		// Errors are in the snapshot and logged on change.
		_ = c.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the background polls, waits for them and closes the
// connection. The last snapshot stays readable.
func (c *Client) Close() error {
	c.startMu.Lock()
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	c.startMu.Unlock()
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	c.closed = true
	return c.dropConn()
}

func (c *Client) isClosed() bool {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	return c.closed
}

// Poll asks the kubelet once and updates the snapshot. On failure the
// previous answer is kept, marked stale, and the error (wrapping
// ErrNoSocket, ErrTimeout or ErrCall) returned. When ctx itself ends the
// snapshot is left as it was.
func (c *Client) Poll(ctx context.Context) error {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.closed {
		return ErrClosed
	}
	resp, err := c.list(ctx)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("poll kubelet: %w", ctx.Err())
	}
	prev := c.snap.Load()
	now := c.now()
	if err != nil {
		next := *prev
		next.Stale, next.Err, next.Polled = true, err, now
		c.publish(&next)
		c.noteState(err)
		return err
	}
	next := &Snapshot{Pods: convertPods(resp.GetPodResources()), At: now, Polled: now, Allocatable: prev.Allocatable}
	if alloc, known := c.allocatable(ctx); known {
		next.Allocatable = alloc
	}
	c.publish(next)
	c.noteState(nil)
	return nil
}

func (c *Client) publish(s *Snapshot) {
	c.snap.Store(s)
	select {
	case c.updates <- struct{}{}:
	default:
	}
}

// list calls List, retrying once on a new connection when a reused one
// fails to connect (the kubelet restarted and replaced its socket).
func (c *Client) list(ctx context.Context) (*podresv1.ListPodResourcesResponse, error) {
	if _, err := os.Stat(c.socket); err != nil {
		_ = c.dropConn()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSocket, c.socket)
		}
		return nil, fmt.Errorf("%w: %w", ErrCall, err)
	}
	reused := c.conn != nil
	resp, err := c.callList(ctx)
	if err != nil && reused && status.Code(err) == codes.Unavailable && ctx.Err() == nil {
		_ = c.dropConn()
		resp, err = c.callList(ctx)
	}
	if err != nil {
		// A fresh connection next time: gRPC's own reconnection backs off
		// for up to two minutes.
		_ = c.dropConn()
		return nil, c.wrap("List", err)
	}
	return resp, nil
}

func (c *Client) callList(ctx context.Context) (*podresv1.ListPodResourcesResponse, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return cl.List(cctx, &podresv1.ListPodResourcesRequest{})
}

// allocatable calls GetAllocatableResources. known is false when the call
// failed for a reason that says nothing of the devices (the previous
// answer then stands); a kubelet that does not serve the call gives nil,
// known.
func (c *Client) allocatable(ctx context.Context) (map[string]map[string]int, bool) {
	cl, err := c.client()
	if err != nil {
		return nil, false
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := cl.GetAllocatableResources(cctx, &podresv1.AllocatableResourcesRequest{})
	switch {
	case status.Code(err) == codes.Unimplemented:
		c.noteAlloc("unimplemented", "kubelet does not serve GetAllocatableResources; time-slicing replicas unknown", nil)
		return nil, true
	case err != nil:
		c.noteAlloc("failed", "GetAllocatableResources failed; keeping the previous answer", c.wrap("GetAllocatableResources", err))
		return nil, false
	}
	c.noteAlloc("ok", "GetAllocatableResources answered", nil)
	out := map[string]map[string]int{}
	for _, d := range resp.GetDevices() {
		r := d.GetResourceName()
		for _, id := range d.GetDeviceIds() {
			base, _, _ := accounting.SplitReplica(id)
			if out[r] == nil {
				out[r] = map[string]int{}
			}
			out[r][base]++
		}
	}
	return out, true
}

func (c *Client) client() (podresv1.PodResourcesListerClient, error) {
	if c.conn == nil {
		conn, err := grpc.NewClient("unix://"+c.socket,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.maxRecv)))
		if err != nil {
			return nil, fmt.Errorf("%w: connect %s: %w", ErrCall, c.socket, err)
		}
		c.conn = conn
	}
	return podresv1.NewPodResourcesListerClient(c.conn), nil
}

func (c *Client) dropConn() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	if err != nil {
		return fmt.Errorf("close kubelet connection: %w", err)
	}
	return nil
}

// wrap classifies a call's error.
func (c *Client) wrap(call string, err error) error {
	if errors.Is(err, ErrCall) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("%w: %s after %s: %w", ErrTimeout, call, c.timeout, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrCall, call, err)
}

// noteState logs a change of the poll's state: ok, no socket, timeout,
// error.
func (c *Client) noteState(err error) {
	state := "ok"
	switch {
	case errors.Is(err, ErrNoSocket):
		state = "no socket"
	case errors.Is(err, ErrTimeout):
		state = "timeout"
	case err != nil:
		state = "error"
	}
	if state == c.state {
		return
	}
	prev := c.state
	c.state = state
	if err == nil {
		c.logger.Info("kubelet pod-resources API answering", "previous", cmp.Or(prev, "starting"))
		return
	}
	c.logger.Warn("kubelet pod-resources API unavailable; keeping the last answer", "state", state, "err", err)
}

func (c *Client) noteAlloc(state, msg string, err error) {
	if state == c.allocState {
		return
	}
	c.allocState = state
	if err != nil {
		c.logger.Warn(msg, "err", err)
		return
	}
	c.logger.Debug(msg)
}

// convertPods keeps the device assignments of an answer.
func convertPods(in []*podresv1.PodResources) []Pod {
	out := make([]Pod, 0, len(in))
	for _, p := range in {
		pod := Pod{Namespace: p.GetNamespace(), Name: p.GetName()}
		for _, ct := range p.GetContainers() {
			var devs []Devices
			for _, d := range ct.GetDevices() {
				if len(d.GetDeviceIds()) == 0 {
					continue
				}
				devs = append(devs, Devices{Resource: d.GetResourceName(), IDs: d.GetDeviceIds()})
			}
			if len(devs) > 0 {
				pod.Containers = append(pod.Containers, Container{Name: ct.GetName(), Devices: devs})
			}
		}
		if len(pod.Containers) > 0 {
			out = append(out, pod)
		}
	}
	slices.SortFunc(out, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}
