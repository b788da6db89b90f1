// Package daemon runs a node's container runtime as a process of its own
// (skiff-runtime, or `skiff runtime` in builds without the bundled binary).
// It is the parent of every container, so containers, their exit codes and
// their logs outlive agent restarts, and the agent reaches it only through
// the CRI on a unix socket. The package also fixes the node's on-disk
// layout that agent and runtime share.
package daemon

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

	"github.com/skiff/skiff/pkg/runtime/cri"
	"github.com/skiff/skiff/pkg/runtime/images"
)

// Socket is where the node's CRI runtime listens, under the agent data dir.
func Socket(agentDir string) string { return filepath.Join(agentDir, "cri.sock") }

// ImageStoreDir is where a node keeps its images, under the agent data dir.
func ImageStoreDir(agentDir string) string { return filepath.Join(agentDir, "imagestore") }

// CgroupRoot is the cgroup path under which a node's pods live; it is
// derived from the data dir so clusters sharing a machine stay apart.
func CgroupRoot(agentDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(agentDir)))
	return "/skiff/" + hex.EncodeToString(sum[:4])
}

func pidFile(agentDir string) string { return filepath.Join(agentDir, "runtime.pid") }

// LogFile is where the runtime process writes its own log.
func LogFile(agentDir string) string { return filepath.Join(agentDir, "runtime.log") }

// Serve serves the CRI for the node whose agent dir is agentDir until ctx
// ends. It writes its pid to agentDir/runtime.pid.
func Serve(ctx context.Context, agentDir string, log *slog.Logger) error {
	st, err := images.Open(ImageStoreDir(agentDir))
	if err != nil {
		return err
	}
	svc, err := cri.New(cri.Config{Root: filepath.Join(agentDir, "runtime"), Images: st, CgroupRoot: CgroupRoot(agentDir), Log: log})
	if err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(agentDir), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile(agentDir))
	log.Info("container runtime serving", "socket", Socket(agentDir))
	return svc.Serve(ctx, Socket(agentDir))
}

// Start starts the runtime process, detached in its own session so that it
// outlives the agent, even a killed one: argv is the command that runs
// Serve for agentDir.
func Start(agentDir string, argv []string, log *slog.Logger) error {
	logFile, err := os.OpenFile(LogFile(agentDir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start container runtime: %w", err)
	}
	log.Info("started container runtime", "pid", cmd.Process.Pid, "binary", argv[0])
	// Written here too (the runtime writes it once serving), so that Stop
	// finds a runtime that is still starting.
	if err := os.WriteFile(pidFile(agentDir), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// Stop asks the node's runtime process to exit (SIGTERM) and waits, killing
// it after 5s.
func Stop(agentDir string) error {
	b, err := os.ReadFile(pidFile(agentDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: %w", pidFile(agentDir), err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil
	}
	for range 100 {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
