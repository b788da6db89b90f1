package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
)

// StreamingAddr is where the runtime's streaming server listens unless
// Config says otherwise: a free port on the loopback address, as
// containerd's default, so only processes on the node can reach it and
// the kubelet proxies every stream to it. A stream needs a single-use
// random token that only a CRI caller (the root-only socket) obtains, and
// tokens expire after a minute.
const StreamingAddr = "127.0.0.1:0"

// streamServer serves exec, attach and port-forward streams with the
// upstream CRI streaming library (remotecommand over SPDY and WebSocket,
// portforward); the CRI calls hand out its URLs.
type streamServer struct {
	server   streaming.Server
	http     *http.Server
	listener net.Listener
}

// newStreamServer listens on addr and prepares the streaming server for
// rt; serve starts it.
func newStreamServer(addr string, rt streaming.Runtime) (*streamServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: listen %s: %w", addr, err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = ln.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	srv, err := streaming.NewServer(cfg, rt)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	return &streamServer{
		server:   srv,
		listener: ln,
		http:     &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second},
	}, nil
}

// serve serves streams until ctx ends, then closes every open stream.
func (s *streamServer) serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		_ = s.http.Close()
	}()
	if err := s.http.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("streaming server: %w", err)
	}
	return nil
}

// runningContainer returns the record of a running container, or the
// FailedPrecondition error the CRI gives for a stopped one.
func (s *Service) runningContainer(id string) (*containerRecord, error) {
	rec, err := s.container(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	running := rec.State == stateRunning
	s.mu.Unlock()
	if !running {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "container %s is not running", rec.ID)
	}
	return rec, nil
}

func (s *Service) streams() (streaming.Server, error) {
	if s.stream == nil {
		return nil, grpcstatus.Error(codes.Unavailable, "the runtime serves no streams")
	}
	return s.stream.server, nil
}

// Exec implements RuntimeServiceServer: it returns the URL on which the
// streaming server runs the command once the caller connects.
func (s *Service) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, grpcstatus.Error(codes.InvalidArgument, "cmd is required")
	}
	rec, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	srv, err := s.streams()
	if err != nil {
		return nil, err
	}
	req.ContainerId = rec.ID
	return srv.GetExec(req)
}

// Attach implements RuntimeServiceServer: it returns the URL on which the
// streaming server attaches to the container's main process.
func (s *Service) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	rec, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	srv, err := s.streams()
	if err != nil {
		return nil, err
	}
	req.ContainerId = rec.ID
	return srv.GetAttach(req)
}

// PortForward implements RuntimeServiceServer: it returns the URL on which
// the streaming server forwards connections into the sandbox's network
// namespace.
func (s *Service) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ready := sb.State == sandboxReady
	s.mu.Unlock()
	if !ready {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "sandbox %s is not ready", sb.ID)
	}
	srv, err := s.streams()
	if err != nil {
		return nil, err
	}
	return srv.GetPortForward(req)
}
