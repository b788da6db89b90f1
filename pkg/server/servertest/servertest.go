// Package servertest runs a real skiff control plane in-process for
// integration tests: embedded etcd in a temp dir, the API server on a free
// loopback port, and a client-go clientset authenticated as the admin.
//
//	srv := servertest.Start(t)
//	srv.Client.CoreV1().ConfigMaps("default").Create(...)
//
// The server stops and its data dir is removed when the test ends.
package servertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff/skiff/pkg/server"
	"github.com/skiff/skiff/pkg/version"
)

// Server is a running test control plane.
type Server struct {
	// Config reaches the server as the admin.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// DataDir is the server's data dir; Kubeconfig its admin kubeconfig.
	DataDir, Kubeconfig string
	// Port is the HTTPS port.
	Port int

	cfg    server.Config
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan error
}

// Start runs a server until the test ends. mutate may adjust the
// configuration (data dir and port are already set).
func Start(t testing.TB, mutate ...func(*server.Config)) *Server {
	t.Helper()
	dir := t.TempDir()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		DataDir:      filepath.Join(dir, "data"),
		HTTPSPort:    port,
		BindAddress:  "127.0.0.1",
		DisableAgent: true,
		// API tests see only what they do: no controllers or scheduler
		// writing beside them (mutate turns them on).
		DisableScheduler:         true,
		DisableControllerManager: true,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv := &Server{DataDir: cfg.DataDir, Kubeconfig: filepath.Join(cfg.DataDir, "admin.kubeconfig"), Port: port, cfg: cfg, log: log}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
	})
	if err := srv.start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	srv.Client = kubernetes.NewForConfigOrDie(srv.Config)
	return srv
}

func (s *Server) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- server.Run(ctx, s.cfg, s.log, version.Info()) }()
	cfg, err := waitReady(s.done, s.Kubeconfig, 30*time.Second)
	if err != nil {
		return err
	}
	s.Config = cfg
	return nil
}

func (s *Server) stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("server did not stop within 30s")
	}
}

// Restart stops the server and starts it again on the same data dir and
// port; clients built from Config keep working across it.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("restart server: %v", err)
	}
}

func waitReady(done <-chan error, kubeconfig string, timeout time.Duration) (*rest.Config, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return nil, fmt.Errorf("server exited: %v", err)
		default:
		}
		if _, err := os.Stat(kubeconfig); err == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return nil, err
			}
			cfg.QPS, cfg.Burst = -1, 0
			c, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return nil, err
			}
			body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
			if err == nil && string(body) == "ok" {
				return cfg, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, errors.New("timed out waiting for /readyz")
}

// FreePort returns a TCP port free on loopback at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
