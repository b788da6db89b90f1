// Package benchserver starts `skiff server` for the hack/bench tools: a
// fresh process on a random loopback port, waited for until /readyz
// answers ok, with an admin client configuration and /proc readings.
package benchserver

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Server is a running `skiff server`.
type Server struct {
	Cmd        *exec.Cmd
	Kubeconfig string
	// Ready is how long the server took from exec to /readyz ok.
	Ready time.Duration
}

// Start runs bin as `server` on dir with extra flags and waits until it is
// ready; any failure ends the tool.
func Start(bin, dir string, args ...string) *Server {
	port := 30000 + rand.IntN(20000)
	kc := filepath.Join(dir, "admin.kubeconfig")
	_ = os.Remove(kc)
	argv := append([]string{"server", "--data-dir", dir, "--https-listen-port", strconv.Itoa(port), "--bind-address", "127.0.0.1"}, args...)
	cmd := exec.Command(bin, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	s := &Server{Cmd: cmd, Kubeconfig: kc}
	for time.Since(t0) < 30*time.Second {
		if _, err := os.Stat(kc); err == nil {
			cs := kubernetes.NewForConfigOrDie(s.Config(false))
			if b, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background()); err == nil && string(b) == "ok" {
				s.Ready = time.Since(t0)
				return s
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	log.Fatal("server did not become ready within 30s")
	return nil
}

// Config reaches the server as the admin without client-side rate limits,
// in protobuf when asked.
func (s *Server) Config(protobuf bool) *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		log.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	if protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	return cfg
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.Cmd.Process.Pid }

// Stop sends SIGTERM and waits for the process.
func (s *Server) Stop() {
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	_, _ = s.Cmd.Process.Wait()
}

// MemoryMB reads a /proc/<pid>/status field (VmRSS, RssAnon) in MB; pid 0
// is this process.
func MemoryMB(pid int, field string) float64 {
	p := "/proc/self/status"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// ProfileCPU writes this process's CPU profile to path until the returned
// function is called; an empty path profiles nothing.
func ProfileCPU(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// TempDir makes a scratch directory for a tool's data dirs; the returned
// function removes it.
func TempDir(prefix string) (string, func()) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		log.Fatal(err)
	}
	return dir, func() { _ = os.RemoveAll(dir) }
}
