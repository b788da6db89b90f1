package ownership

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func gidMode(t *testing.T, path string) (int64, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int64(fi.Sys().(*syscall.Stat_t).Gid), fi.Mode()
}

func TestApplySetsGroupSetgidAndGroupRW(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("x"), 0o600)
	os.Symlink("sub/f", filepath.Join(dir, "link"))
	if err := Apply(dir, 1234, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "sub")} {
		gid, mode := gidMode(t, p)
		if gid != 1234 || mode&os.ModeSetgid == 0 || mode.Perm()&0o070 != 0o070 {
			t.Errorf("%s: gid %d mode %v", p, gid, mode)
		}
	}
	gid, mode := gidMode(t, filepath.Join(dir, "sub", "f"))
	if gid != 1234 || mode.Perm() != 0o660 {
		t.Errorf("file: gid %d mode %v", gid, mode)
	}
	if gid, _ := gidMode(t, filepath.Join(dir, "link")); gid != 1234 {
		t.Errorf("symlink gid %d", gid)
	}
}

func TestOnRootMismatchSkipsAMatchingRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o600)
	os.Chown(dir, -1, 55)
	os.Chmod(dir, 0o770|os.ModeSetgid)
	policy := corev1.FSGroupChangeOnRootMismatch
	if err := Apply(dir, 55, &policy, false); err != nil {
		t.Fatal(err)
	}
	if gid, _ := gidMode(t, f); gid == 55 {
		t.Error("OnRootMismatch walked a volume whose root matched")
	}
	always := corev1.FSGroupChangeAlways
	if err := Apply(dir, 55, &always, false); err != nil {
		t.Fatal(err)
	}
	if gid, _ := gidMode(t, f); gid != 55 {
		t.Error("Always did not walk the volume")
	}
}
