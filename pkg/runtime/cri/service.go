// Package cri serves the Container Runtime Interface (k8s.io/cri-api) over
// a unix socket, running pod sandboxes and containers with libcontainer
// (package runc) on images from the node's image store (package images).
//
// It runs in its own long-lived process, `skiff runtime`, which is the
// parent of every container it starts: it reaps them and keeps their exit
// status, holds their output pipes and writes CRI-format log files, and
// keeps its state on disk, so the kubelet (which talks to it with
// k8s.io/cri-client, like upstream's kubelet talks to containerd) can
// restart at will. See docs/adr/0003-container-runtime.md.
//
// Exec, Attach and PortForward hand out URLs of the runtime's streaming
// server (the upstream CRI streaming library on a loopback port, with
// single-use tokens), to which the kubelet proxies clients' streams; see
// docs/adr/0006-streaming.md.
package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/network/hostport"
	"github.com/skiff/skiff/pkg/network/podnet"
	"github.com/skiff/skiff/pkg/runtime/images"
	"github.com/skiff/skiff/pkg/runtime/runc"
	"github.com/skiff/skiff/pkg/version"
)

// Config configures a Service.
type Config struct {
	// Root holds the runtime's state: sandboxes/, containers/, libcontainer/.
	Root string
	// Images is the node's image store.
	Images *images.Store
	// CgroupRoot is the cgroup path below which pods get their cgroups when
	// the kubelet names no parent; distinct per node so several clusters
	// can share a machine.
	CgroupRoot string
	// StreamingAddr is the host:port of the streaming server (exec,
	// attach, port-forward); "" means StreamingAddr. It should be a
	// loopback address: the kubelet proxies streams to it.
	StreamingAddr string
	Clock         clock.Clock
	Log           *slog.Logger
}

// Service implements the CRI runtime and image services.
type Service struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	cfg    Config
	runner *runc.Runner

	mu         sync.Mutex
	sandboxes  map[string]*sandboxRecord
	containers map[string]*containerRecord
	// exited is closed when a running container's init process exits.
	exited map[string]chan struct{}
	// logs are the log writers of containers whose output this process
	// holds (started by it, still running).
	logs map[string]*logWriter
	// attach are the attach hubs of the containers this process started
	// that are still running.
	attach map[string]*attachHub
	// stream serves exec, attach and port-forward streams; nil until Serve.
	stream *streamServer

	netMu sync.Mutex
	// net is the pod network, once the kubelet passed the pod range.
	net *podnet.Network

	hostPortsMu sync.Mutex
	// hostPorts publishes the sandboxes' host ports; nil until needed.
	hostPorts *hostport.Table
}

var (
	_ runtimeapi.RuntimeServiceServer = (*Service)(nil)
	_ runtimeapi.ImageServiceServer   = (*Service)(nil)
)

// New loads the runtime's state from cfg.Root and re-adopts containers
// that are still running.
func New(cfg Config) (*Service, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/skiff"
	}
	for _, d := range []string{"sandboxes", "containers", "libcontainer"} {
		if err := os.MkdirAll(filepath.Join(cfg.Root, d), 0o700); err != nil {
			return nil, err
		}
	}
	s := &Service{
		cfg:        cfg,
		runner:     &runc.Runner{StateDir: filepath.Join(cfg.Root, "libcontainer")},
		sandboxes:  map[string]*sandboxRecord{},
		containers: map[string]*containerRecord{},
		exited:     map[string]chan struct{}{},
		logs:       map[string]*logWriter{},
		attach:     map[string]*attachHub{},
	}
	if err := s.loadNetwork(); err != nil {
		return nil, fmt.Errorf("pod network: %w", err)
	}
	sbs, err := loadRecords[sandboxRecord](filepath.Join(cfg.Root, "sandboxes"), "sandbox.json")
	if err != nil {
		return nil, err
	}
	for _, sb := range sbs {
		if err := sb.decode(); err != nil {
			return nil, err
		}
		s.sandboxes[sb.ID] = sb
	}
	cs, err := loadRecords[containerRecord](filepath.Join(cfg.Root, "containers"), "container.json")
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if err := c.decode(); err != nil {
			return nil, err
		}
		s.containers[c.ID] = c
		if c.State == stateRunning {
			s.readopt(c)
		}
	}
	if err := s.syncHostPorts(context.Background()); err != nil {
		s.cfg.Log.Warn("publish the pods' host ports", "err", err)
	}
	return s, nil
}

// Serve serves CRI on a unix socket at path, and streams on
// Config.StreamingAddr, until ctx ends.
func (s *Service) Serve(ctx context.Context, path string) error {
	addr := s.cfg.StreamingAddr
	if addr == "" {
		addr = StreamingAddr
	}
	st, err := newStreamServer(addr, streamRuntime{s})
	if err != nil {
		return err
	}
	s.stream = st
	go func() {
		if err := st.serve(ctx); err != nil {
			s.cfg.Log.Error("streaming server stopped", "err", err)
		}
	}()
	_ = os.Remove(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	runtimeapi.RegisterRuntimeServiceServer(srv, s)
	runtimeapi.RegisterImageServiceServer(srv, s)
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	return srv.Serve(ln)
}

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Version implements RuntimeServiceServer.
func (s *Service) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "skiff", RuntimeVersion: version.Info().GitVersion, RuntimeApiVersion: "v1"}, nil
}

// Status implements RuntimeServiceServer.
func (s *Service) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}, nil
}

// RuntimeConfig implements RuntimeServiceServer: cgroupfs, as the kubelet
// must use too.
func (s *Service) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

func notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, id)
}

func (s *Service) sandboxDir(id string) string {
	return filepath.Join(s.cfg.Root, "sandboxes", id)
}

func (s *Service) containerDir(id string) string {
	return filepath.Join(s.cfg.Root, "containers", id)
}

func (s *Service) now() time.Time { return s.cfg.Clock.Now() }
