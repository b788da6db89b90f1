package localcluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff/skiff/pkg/runtime/daemon"
)

// startDetached starts argv in its own session with stdout and stderr
// appended to logPath, so that it outlives the command that started it,
// and returns its pid.
func startDetached(argv []string, logPath string) (int, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	// Reap it if it exits while we are still here, so that alive() does
	// not see a zombie.
	go func() { _ = cmd.Wait() }()
	return pid, nil
}

// alive says whether pid runs and its command line mentions marker (a
// node's data dir), so that a recycled pid is never signalled.
func alive(pid int, marker string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie has exited.
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return false
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// Empty while the process execs (nsenter becomes skiff, skiff
	// becomes skiff-agent).
	return marker == "" || len(b) == 0 || bytes.Contains(b, []byte(marker))
}

// stopProcess sends SIGTERM and waits up to grace, then SIGKILLs.
func stopProcess(pid int, marker string, grace time.Duration) {
	if !alive(pid, marker) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alive(pid, marker) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid, marker) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitGone([]int{pid}, 5*time.Second)
	}
}

func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		left := false
		for _, p := range pids {
			if alive(p, "") {
				left = true
			}
		}
		if !left {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// netnsPids lists the processes in the network namespace ns.
func netnsPids(ns string) []int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	return parsePids(string(out))
}

func parsePids(s string) []int {
	var pids []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupPids lists the processes in the node's pod cgroups (under
// daemon.CgroupRoot in any hierarchy, v1 or v2).
func cgroupPids(agentDir string) []int {
	root := daemon.CgroupRoot(agentDir)
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", root))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", root)); err == nil {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", root))
	}
	seen := map[int]bool{}
	var pids []int
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, pid := range parsePids(string(b)) {
				if !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// killNode SIGKILLs every process of the node: its skiff process, all
// in its network namespace (the runtime among them) and all in its pod
// cgroups (the containers, which have namespaces of their own). It
// returns how many it killed.
func killNode(n *Node) int {
	killed := 0
	for round := 0; round < 5; round++ {
		pids := netnsPids(n.NetNS)
		pids = append(pids, cgroupPids(n.AgentDir())...)
		if alive(n.Pid, n.Dir) {
			pids = append(pids, n.Pid)
		}
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if p != os.Getpid() && syscall.Kill(p, syscall.SIGKILL) == nil {
				killed++
			}
		}
		waitGone(pids, 5*time.Second)
	}
	return killed
}
