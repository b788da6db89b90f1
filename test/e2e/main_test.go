package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain fails the run if the tests left a mount behind: every test
// cleans up its pods' volumes, rootfs and FUSE mounts, even on failure.
// It compares /proc/self/mountinfo before and after, so another skiff
// running on the machine at the same time can cause a false alarm.
func TestMain(m *testing.M) {
	before := mountPoints()
	code := m.Run()
	var left []string
	for mp := range mountPoints() {
		if before[mp] {
			continue
		}
		if strings.HasPrefix(mp, os.TempDir()+"/") || strings.Contains(mp, "skiff") {
			left = append(left, mp)
		}
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d mounts left behind by the tests:\n  %s\n", len(left), strings.Join(left, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// mountPoints is the set of this mount namespace's mount points.
func mountPoints() map[string]bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		fmt.Fprintln(os.Stderr, "read mountinfo:", err)
		os.Exit(2)
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			set[f[4]] = true
		}
	}
	return set
}
