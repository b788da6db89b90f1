package nodedir

import (
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// CheckHostPath makes path meet a hostPath volume's type, as upstream's
// kubelet does: the OrCreate types create a missing directory (0755) or
// empty file (0644), the other types require what they name to exist,
// and the empty type checks nothing.
func CheckHostPath(path string, t *corev1.HostPathType) error {
	typ := corev1.HostPathUnset
	if t != nil {
		typ = *t
	}
	fi, err := os.Stat(path)
	missing := os.IsNotExist(err)
	if err != nil && !missing {
		return fmt.Errorf("hostPath type check: %w", err)
	}
	is := func(ok bool, what string) error {
		if missing || !ok {
			return fmt.Errorf("hostPath type check failed: %s is not a %s", path, what)
		}
		return nil
	}
	switch typ {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if missing {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return fmt.Errorf("hostPath create %s: %w", path, err)
			}
			return nil
		}
		return is(fi.IsDir(), "directory")
	case corev1.HostPathFileOrCreate:
		if missing {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("hostPath create %s: %w", path, err)
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("hostPath create %s: %w", path, err)
			}
			return f.Close()
		}
		return is(fi.Mode().IsRegular(), "file")
	case corev1.HostPathDirectory:
		return is(!missing && fi.IsDir(), "directory")
	case corev1.HostPathFile:
		return is(!missing && fi.Mode().IsRegular(), "file")
	case corev1.HostPathSocket:
		return is(!missing && fi.Mode()&os.ModeSocket != 0, "socket")
	case corev1.HostPathCharDev:
		return is(!missing && fi.Mode()&os.ModeCharDevice != 0, "character device")
	case corev1.HostPathBlockDev:
		return is(!missing && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0, "block device")
	default:
		return fmt.Errorf("hostPath type %q is not supported", typ)
	}
}
