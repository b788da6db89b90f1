// Package mounts finds and removes the mounts a node left under a
// directory (pod volumes, container root filesystems), whatever state the
// pods that made them were in.
package mounts

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Under returns the mount points at or below dir, deepest first.
func Under(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mounts under %s: %w", dir, err)
	}
	var points []string
	for _, m := range infos {
		points = append(points, m.Mountpoint)
	}
	// Deepest first, so a mount is gone before the one holding it.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return points, nil
}

// UnmountUnder lazily unmounts every mount at or below dir, deepest
// first, until none is left.
func UnmountUnder(dir string) error {
	// A mount point can be stacked several times: repeat until clean.
	for range 8 {
		points, err := Under(dir)
		if err != nil || len(points) == 0 {
			return err
		}
		var errs []error
		for _, p := range points {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	points, err := Under(dir)
	if err == nil && len(points) > 0 {
		err = fmt.Errorf("mounts left under %s: %v", dir, points)
	}
	return err
}
