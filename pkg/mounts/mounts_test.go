package mounts_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff/skiff/pkg/mounts"
)

// Nested and stacked tmpfs mounts under a directory all go; a mount
// outside it stays.
func TestUnmountUnder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	outside := filepath.Join(root, "datax")
	for _, d := range []string{filepath.Join(dir, "pods", "a", "vol"), filepath.Join(dir, "pods", "b"), outside} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	mount := func(p string) {
		t.Helper()
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	mount(filepath.Join(dir, "pods", "a"))
	if err := os.MkdirAll(filepath.Join(dir, "pods", "a", "vol"), 0o700); err != nil {
		t.Fatal(err)
	}
	mount(filepath.Join(dir, "pods", "a", "vol"))
	mount(filepath.Join(dir, "pods", "b"))
	mount(filepath.Join(dir, "pods", "b")) // stacked
	mount(outside)
	t.Cleanup(func() { _ = unix.Unmount(outside, unix.MNT_DETACH); _ = mounts.UnmountUnder(dir) })

	if points, _ := mounts.Under(dir); len(points) != 4 {
		t.Fatalf("mounts under %s: %v", dir, points)
	}
	if err := mounts.UnmountUnder(dir); err != nil {
		t.Fatal(err)
	}
	if points, _ := mounts.Under(dir); len(points) != 0 {
		t.Fatalf("left: %v", points)
	}
	if points, _ := mounts.Under(outside); len(points) != 1 {
		t.Fatalf("the mount outside went too: %v", points)
	}
}
