package nfs

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff/skiff/pkg/volume/nfs/nfstest"
)

// serve starts an NFS server over a temp dir on a free loopback port.
func serve(t *testing.T) (dir string, port int) {
	t.Helper()
	dir = t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = nfstest.Serve(l, dir) }()
	t.Cleanup(func() { l.Close() })
	return dir, l.Addr().(*net.TCPAddr).Port
}

func requireFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("needs /dev/fuse")
	}
}

// mountFUSE mounts the export at a new directory, in process.
func mountFUSE(t *testing.T, port int, readOnly bool) string {
	t.Helper()
	c, err := Dial(Source{Server: "127.0.0.1", Path: "/", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	srv, err := MountFUSE(c, mnt, readOnly)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Unmount(mnt); err != nil {
			t.Error(err)
		}
		srv.Wait()
		c.Close()
	})
	return mnt
}

// Files written, renamed and removed through the mount change the
// server's directory, and the server's files read back through it.
func TestFUSEReadWrite(t *testing.T) {
	requireFUSE(t)
	dir, port := serve(t)
	if err := os.WriteFile(filepath.Join(dir, "served"), []byte("from the server"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := mountFUSE(t, port, false)

	got, err := os.ReadFile(filepath.Join(mnt, "served"))
	if err != nil || string(got) != "from the server" {
		t.Fatalf("read served file: %q, %v", got, err)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, several RPCs
	if err := os.WriteFile(filepath.Join(mnt, "big"), big, 0o640); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "big")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("server has %d bytes, %v; want %d", len(got), err, len(big))
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "big")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes, %v; want %d", len(got), err, len(big))
	}

	if err := os.Truncate(filepath.Join(mnt, "big"), 10); err != nil {
		t.Fatalf("truncate: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "big")); err != nil || fi.Size() != 10 {
		t.Fatalf("after truncate: %v, %v", fi, err)
	}
	if err := os.Chmod(filepath.Join(mnt, "big"), 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "big")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after chmod: %v, %v", fi.Mode(), err)
	}

	if err := os.MkdirAll(filepath.Join(mnt, "a", "b"), 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil || !fi.IsDir() {
		t.Fatalf("server dir a/b: %v", err)
	}
	if err := os.Rename(filepath.Join(mnt, "big"), filepath.Join(mnt, "a", "b", "moved")); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b", "moved")); err != nil {
		t.Fatalf("renamed file on server: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "big")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old name still on server: %v", err)
	}
	// The renamed directory's children follow it.
	if err := os.Rename(filepath.Join(mnt, "a"), filepath.Join(mnt, "c")); err != nil {
		t.Fatalf("rename dir: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "c", "b", "moved")); err != nil || len(got) != 10 {
		t.Fatalf("read under renamed dir: %q, %v", got, err)
	}

	if err := os.Symlink("c/b/moved", filepath.Join(mnt, "link")); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "link")); err != nil || target != "c/b/moved" {
		t.Fatalf("readlink: %q, %v", target, err)
	}

	names := func(d string) []string {
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatalf("readdir %s: %v", d, err)
		}
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	if got := names(mnt); len(got) != 3 {
		t.Fatalf("readdir: %v, want c, link, served", got)
	}

	if err := os.Remove(filepath.Join(mnt, "c", "b")); err == nil {
		t.Fatal("rmdir of a non-empty directory succeeded")
	}
	if err := os.Remove(filepath.Join(mnt, "c", "b", "moved")); err != nil {
		t.Fatalf("unlink: %v", err)
	}
	if err := os.Remove(filepath.Join(mnt, "c", "b")); err != nil {
		t.Fatalf("rmdir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed dir still on server: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || st.Type != fuseSuperMagic {
		t.Fatalf("statfs: type %#x, %v", st.Type, err)
	}
}

// A read-only mount refuses writes.
func TestFUSEReadOnly(t *testing.T) {
	requireFUSE(t)
	_, port := serve(t)
	mnt := mountFUSE(t, port, true)
	err := os.WriteFile(filepath.Join(mnt, "f"), nil, 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Fatalf("write on a read-only mount: %v, want EROFS", err)
	}
}

// Without a kernel NFS client the mounter falls back to the helper, and
// an export that cannot be mounted fails fast with the helper's exit.
func TestMountFallsBackToHelper(t *testing.T) {
	var gotData string
	m := &Mounter{
		Helper: []string{"/bin/false"},
		kernelMount: func(_, _, fstype string, _ uintptr, data string) error {
			if fstype != "nfs" {
				t.Errorf("fstype %q", fstype)
			}
			gotData = data
			return unix.ENODEV
		},
	}
	target := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	err := m.Mount(context.Background(), Source{Server: "127.0.0.1", Path: "/x", Port: 2050}, target)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("exited before mounting")) {
		t.Fatalf("Mount: %v, want the helper's early exit", err)
	}
	want := "nfsvers=3,proto=tcp,nolock,addr=127.0.0.1,mountaddr=127.0.0.1,port=2050,mountport=2050,mountproto=tcp"
	if gotData != want {
		t.Fatalf("kernel mount data %q, want %q", gotData, want)
	}
	if _, err := os.Stat(LogPath(target)); err != nil {
		t.Fatalf("helper log: %v", err)
	}
}

// Other kernel mount errors are returned, not papered over by FUSE.
func TestMountKernelError(t *testing.T) {
	m := &Mounter{
		Helper:      []string{"/bin/false"},
		kernelMount: func(string, string, string, uintptr, string) error { return unix.EACCES },
	}
	err := m.Mount(context.Background(), Source{Server: "127.0.0.1", Path: "/"}, t.TempDir())
	if !errors.Is(err, unix.EACCES) {
		t.Fatalf("Mount: %v, want EACCES", err)
	}
}
