package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"

	"github.com/skiff/skiff/pkg/runtime/cri"
	"github.com/skiff/skiff/pkg/runtime/images"
)

// RuntimeSocket is where the node's CRI runtime listens, under the agent
// data dir.
func RuntimeSocket(agentDir string) string { return filepath.Join(agentDir, "cri.sock") }

// CgroupRoot is the cgroup path under which a node's pods live; it is
// derived from the data dir so clusters sharing a machine stay apart.
func CgroupRoot(agentDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(agentDir)))
	return "/skiff/" + hex.EncodeToString(sum[:4])
}

// RunRuntime serves the CRI for the node whose agent dir is agentDir until
// ctx ends: this is `skiff runtime`, a process of its own that outlives
// agent restarts. It writes its pid to agentDir/runtime.pid.
func RunRuntime(ctx context.Context, agentDir string, log *slog.Logger) error {
	st, err := images.Open(ImageStoreDir(agentDir))
	if err != nil {
		return err
	}
	svc, err := cri.New(cri.Config{Root: filepath.Join(agentDir, "runtime"), Images: st, CgroupRoot: CgroupRoot(agentDir), Log: log})
	if err != nil {
		return err
	}
	pidFile := filepath.Join(agentDir, "runtime.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile)
	log.Info("container runtime serving", "socket", RuntimeSocket(agentDir))
	return svc.Serve(ctx, RuntimeSocket(agentDir))
}

// runtimeClients connect to the node's runtime, starting `skiff runtime`
// (detached, in its own session) when it is not answering.
func runtimeClients(ctx context.Context, agentDir string, log *slog.Logger) (internalapi.RuntimeService, internalapi.ImageManagerService, error) {
	endpoint := "unix://" + RuntimeSocket(agentDir)
	if !runtimeAnswers(ctx, endpoint) {
		if err := startRuntime(agentDir, log); err != nil {
			return nil, nil, err
		}
		deadline := time.Now().Add(15 * time.Second)
		for !runtimeAnswers(ctx, endpoint) {
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("container runtime did not start; see %s", filepath.Join(agentDir, "runtime.log"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	rt, err := remote.NewRemoteRuntimeService(ctx, endpoint, 2*time.Minute, nil, false)
	if err != nil {
		return nil, nil, err
	}
	im, err := remote.NewRemoteImageService(ctx, endpoint, 5*time.Minute, nil, false)
	if err != nil {
		return nil, nil, err
	}
	return rt, im, nil
}

func runtimeAnswers(ctx context.Context, endpoint string) bool {
	if _, err := os.Stat(strings.TrimPrefix(endpoint, "unix://")); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rt, err := remote.NewRemoteRuntimeService(ctx, endpoint, 2*time.Second, nil, false)
	if err != nil {
		return false
	}
	_, err = rt.Version(ctx, "v1")
	return err == nil
}

func startRuntime(agentDir string, log *slog.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(agentDir, "runtime.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "runtime", "--agent-dir", agentDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own session: it must outlive the agent, even a killed one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start container runtime: %w", err)
	}
	log.Info("started container runtime", "pid", cmd.Process.Pid)
	return cmd.Process.Release()
}

// StopRuntime asks the node's runtime process to exit (SIGTERM) and waits.
func StopRuntime(agentDir string) error {
	b, err := os.ReadFile(filepath.Join(agentDir, "runtime.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil
	}
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
