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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	go func() { done <- server.Run(ctx, cfg, log, version.Info()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
	})
	kubeconfig := filepath.Join(cfg.DataDir, "admin.kubeconfig")
	restCfg, err := waitReady(done, kubeconfig, 30*time.Second)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return &Server{Config: restCfg, Client: kubernetes.NewForConfigOrDie(restCfg), DataDir: cfg.DataDir, Kubeconfig: kubeconfig, Port: port}
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
