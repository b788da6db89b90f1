// Package ownership applies a pod's fsGroup to a volume it mounts, as
// upstream's kubelet does: every file's group becomes the fsGroup, files
// become group readable (and writable unless the volume is read-only),
// and directories get the setgid bit so new files inherit the group.
package ownership

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

const (
	rwMask   = 0o660
	roMask   = 0o440
	execMask = 0o110
)

// Apply gives dir and everything below it to fsGroup. With the
// OnRootMismatch policy it does nothing when dir already has the group
// and the permissions Apply would set, so large volumes are not walked on
// every mount.
func Apply(dir string, fsGroup int64, policy *corev1.PodFSGroupChangePolicy, readOnly bool) error {
	if policy != nil && *policy == corev1.FSGroupChangeOnRootMismatch {
		ok, err := rootMatches(dir, fsGroup, readOnly)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return change(path, d, fsGroup, readOnly)
	})
	if err != nil {
		return fmt.Errorf("apply fsGroup %d to %s: %w", fsGroup, dir, err)
	}
	return nil
}

// ForPod applies the pod's fsGroup (if it has one) to dir.
func ForPod(pod *corev1.Pod, dir string, readOnly bool) error {
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.FSGroup == nil {
		return nil
	}
	return Apply(dir, *sc.FSGroup, sc.FSGroupChangePolicy, readOnly)
}

func mask(isDir, readOnly bool) os.FileMode {
	m := os.FileMode(rwMask)
	if readOnly {
		m = roMask
	}
	if isDir {
		m |= os.ModeSetgid | execMask
	}
	return m
}

func change(path string, d fs.DirEntry, gid int64, readOnly bool) error {
	if err := os.Lchown(path, -1, int(gid)); err != nil {
		return err
	}
	// A symlink's own mode means nothing; its target is walked on its own
	// if it is in the volume.
	if d.Type()&fs.ModeSymlink != 0 {
		return nil
	}
	info, err := d.Info()
	if err != nil {
		return err
	}
	return os.Chmod(path, info.Mode()|mask(d.IsDir(), readOnly))
}

func rootMatches(dir string, gid int64, readOnly bool) (bool, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, nil
	}
	want := mask(fi.IsDir(), readOnly)
	return int64(st.Gid) == gid && fi.Mode()&want == want, nil
}
