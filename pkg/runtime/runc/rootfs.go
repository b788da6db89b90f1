package runc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMountData is the kernel's limit on mount option data (one page).
const maxMountData = 4096

// MountRootfs mounts an overlay of layers (top-most first, read-only) with
// a writable upper dir under dir, at dir/rootfs, and returns that path.
func MountRootfs(dir string, layers []string) (string, error) {
	upper, work, target := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if len(layers) == 0 {
		// An image without layers: an empty read-only lower dir.
		empty := filepath.Join(dir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", err
		}
		layers = []string{empty}
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(layers, ":"), upper, work)
	if len(data) >= maxMountData {
		return "", fmt.Errorf("overlay options for %d layers exceed the kernel's %d-byte limit", len(layers), maxMountData)
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return "", fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return target, nil
}

// UnmountRootfs unmounts dir/rootfs (if mounted) and removes dir.
func UnmountRootfs(dir string) error {
	target := filepath.Join(dir, "rootfs")
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && err != unix.EINVAL && !os.IsNotExist(err) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return os.RemoveAll(dir)
}
