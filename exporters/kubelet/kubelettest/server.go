// Package kubelettest serves the kubelet's pod-resources API v1 on a unix
// socket for tests: a real gRPC server whose answers the test sets, which
// can be made to hang, stopped and started again on the same path.
package kubelettest

import (
	"context"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	podresv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// Assignment is one container's devices under one resource.
type Assignment struct {
	Namespace, Pod, Container string
	Resource                  string
	IDs                       []string
}

// Server is a pod-resources server. Its methods are safe for concurrent
// use.
type Server struct {
	podresv1.UnimplementedPodResourcesListerServer

	path string
	srv  *grpc.Server
	ln   net.Listener
	done chan struct{}

	mu          sync.Mutex
	list        *podresv1.ListPodResourcesResponse
	allocatable *podresv1.AllocatableResourcesResponse // nil: Unimplemented
	hang        bool
	release     chan struct{}
	lists       int
}

// Start listens on the unix socket path and serves an empty answer.
func Start(path string) (*Server, error) {
	s := &Server{path: path, list: &podresv1.ListPodResourcesResponse{}, release: make(chan struct{})}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) listen() error {
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.path, err)
	}
	srv := grpc.NewServer()
	podresv1.RegisterPodResourcesListerServer(srv, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	s.mu.Lock()
	s.srv, s.ln, s.done = srv, ln, done
	s.mu.Unlock()
	return nil
}

// Stop stops serving and removes the socket; hanging calls are cut.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-done
}

// Restart starts serving again on the same path, with the same answers.
func (s *Server) Restart() error {
	s.Stop()
	return s.listen()
}

// Set replaces the List answer with the given assignments, grouped by
// pod and container in the order given.
func (s *Server) Set(as ...Assignment) {
	s.SetResponse(Response(as...))
}

// SetResponse replaces the List answer.
func (s *Server) SetResponse(r *podresv1.ListPodResourcesResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = r
}

// SetAllocatable makes GetAllocatableResources answer the device IDs
// given by resource; nil makes it answer Unimplemented, as a kubelet
// without the feature does.
func (s *Server) SetAllocatable(byResource map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if byResource == nil {
		s.allocatable = nil
		return
	}
	r := &podresv1.AllocatableResourcesResponse{}
	for res, ids := range byResource {
		r.Devices = append(r.Devices, &podresv1.ContainerDevices{ResourceName: res, DeviceIds: ids})
	}
	s.allocatable = r
}

// SetHang makes List wait until the call is cancelled (true) or answer
// again (false, which also releases the waiting calls).
func (s *Server) SetHang(hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hang && !hang {
		close(s.release)
		s.release = make(chan struct{})
	}
	s.hang = hang
}

// Lists returns how many List calls the server received.
func (s *Server) Lists() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

// List implements PodResourcesListerServer.
func (s *Server) List(ctx context.Context, _ *podresv1.ListPodResourcesRequest) (*podresv1.ListPodResourcesResponse, error) {
	s.mu.Lock()
	s.lists++
	hang, release, resp := s.hang, s.release, s.list
	s.mu.Unlock()
	if hang {
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-release:
		}
	}
	return resp, nil
}

// GetAllocatableResources implements PodResourcesListerServer.
func (s *Server) GetAllocatableResources(context.Context, *podresv1.AllocatableResourcesRequest) (*podresv1.AllocatableResourcesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allocatable == nil {
		return nil, status.Error(codes.Unimplemented, "GetAllocatableResources is disabled")
	}
	return s.allocatable, nil
}

// Response builds a List answer from assignments, grouped by pod and
// container in the order given.
func Response(as ...Assignment) *podresv1.ListPodResourcesResponse {
	r := &podresv1.ListPodResourcesResponse{}
	pods := map[string]*podresv1.PodResources{}
	for _, a := range as {
		key := a.Namespace + "/" + a.Pod
		p := pods[key]
		if p == nil {
			p = &podresv1.PodResources{Namespace: a.Namespace, Name: a.Pod}
			pods[key] = p
			r.PodResources = append(r.PodResources, p)
		}
		var ct *podresv1.ContainerResources
		for _, c := range p.Containers {
			if c.Name == a.Container {
				ct = c
			}
		}
		if ct == nil {
			ct = &podresv1.ContainerResources{Name: a.Container}
			p.Containers = append(p.Containers, ct)
		}
		ct.Devices = append(ct.Devices, &podresv1.ContainerDevices{ResourceName: a.Resource, DeviceIds: a.IDs})
	}
	return r
}
