package cri

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/skiff/skiff/pkg/runtime/runc"
)

// Termination reasons a container's status reports, as containerd's CRI
// plugin names them.
const (
	reasonCompleted = "Completed"
	reasonError     = "Error"
	reasonOOMKilled = "OOMKilled"
)

// terminationReason is why a container's main process ended, given its exit
// code and its memory cgroup's OOM kill count when it started and when it
// exited. Any OOM kill in the cgroup while the container ran makes it
// OOMKilled, as with containerd, even when the kill hit a child and the
// main process then exited by itself; the exit code stays the process's.
func terminationReason(code int32, oomKillsAtStart, oomKillsAtExit uint64) string {
	switch {
	case oomKillsAtExit > oomKillsAtStart:
		return reasonOOMKilled
	case code == 0:
		return reasonCompleted
	default:
		return reasonError
	}
}

// memoryCgroupDir is the directory of the memory cgroup at path (relative
// to the hierarchy's root): below the memory controller's own hierarchy on
// cgroup v1, below the unified one on cgroup v2.
func memoryCgroupDir(path string) string {
	if _, err := os.Stat(filepath.Join(runc.CgroupRoot, "cgroup.controllers")); err == nil {
		return filepath.Join(runc.CgroupRoot, path)
	}
	return filepath.Join(runc.CgroupRoot, "memory", path)
}

// oomKillFiles are the files, by cgroup version, that count a memory
// cgroup's OOM kills on an "oom_kill N" line: v1's memory.oom_control and
// v2's memory.events.
var oomKillFiles = []string{"memory.oom_control", "memory.events"}

// oomKills reads how many processes the kernel has OOM-killed in the memory
// cgroup at dir. A cgroup that does not exist (yet) has seen no kill.
func oomKills(dir string) (uint64, error) {
	for _, name := range oomKillFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read OOM kill count: %w", err)
		}
		n, err := parseOOMKills(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		return n, nil
	}
	return 0, nil
}

// parseOOMKills finds the "oom_kill N" line of a memory.oom_control or
// memory.events file; kernels too old to count kills have none, which
// reads as zero.
func parseOOMKills(b []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || key != "oom_kill" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("oom_kill count %q: %w", value, err)
		}
		return n, nil
	}
	return 0, sc.Err()
}
