package nodedir

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/mounts"
	"github.com/skiff/skiff/pkg/volume"
)

func hostPathPV(path string, t corev1.HostPathType) *volume.Spec {
	return &volume.Spec{Name: "data", PV: &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &t}}},
	}}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
}

func TestPublishBindMountsAndUnpublishUnmounts(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "pv")
	target := filepath.Join(t.TempDir(), "pods", "uid", "volumes", "data")
	t.Cleanup(func() { mounts.UnmountUnder(target) })
	p := New()
	spec := hostPathPV(src, corev1.HostPathDirectoryOrCreate)
	if !p.CanSupport(spec) || p.SupportsOwnership(spec) {
		t.Fatal("hostPath PV: want supported, without ownership")
	}
	req := &volume.PublishRequest{VolumeID: "pv1", Spec: spec, TargetPath: target}
	for range 2 { // idempotent: the second call mounts nothing more
		if err := p.NodePublish(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if points, _ := mounts.Under(target); len(points) != 1 {
		t.Fatalf("mounts at target: %v", points)
	}
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(src, "f")); err != nil || string(b) != "hi" {
		t.Fatalf("source does not see the write: %q %v", b, err)
	}
	for range 2 {
		if err := p.NodeUnpublish(ctx, "pv1", target); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := mountinfo.Mounted(target); m {
		t.Fatal("target still mounted")
	}
	if _, err := os.Stat(filepath.Join(target, "f")); !os.IsNotExist(err) {
		t.Fatal("target still shows the volume")
	}
}

func TestPublishReadOnlyAndRecursive(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := t.TempDir()
	sub := filepath.Join(src, "sub")
	os.Mkdir(sub, 0o755)
	inner := t.TempDir()
	os.WriteFile(filepath.Join(inner, "inner"), []byte("x"), 0o644)
	if err := unix.Mount(inner, sub, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mounts.UnmountUnder(sub) })
	target := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() { mounts.UnmountUnder(target) })
	spec := &volume.Spec{PV: &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: src}}}}}
	p := New()
	if !p.SupportsOwnership(spec) {
		t.Error("local PV: want ownership")
	}
	if err := p.NodePublish(ctx, &volume.PublishRequest{Spec: spec, TargetPath: target, ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "sub", "inner")); err != nil {
		t.Fatalf("bind is not recursive: %v", err)
	}
	if err := os.WriteFile(filepath.Join(target, "f"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write to read-only volume: %v", err)
	}
	if err := p.NodeUnpublish(ctx, "", target); err != nil {
		t.Fatal(err)
	}
	if points, _ := mounts.Under(target); len(points) != 0 {
		t.Fatalf("left mounted: %v", points)
	}
}

func TestPublishMissingLocalPathFails(t *testing.T) {
	spec := &volume.Spec{PV: &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/does/not/exist"}}}}}
	if err := New().NodePublish(context.Background(), &volume.PublishRequest{Spec: spec, TargetPath: t.TempDir()}); err == nil {
		t.Fatal("want an error for a missing local path")
	}
}

func TestCheckHostPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		path   string
		typ    corev1.HostPathType
		ok     bool
		create string // "dir" or "file" when the check creates it
	}{
		{missing, corev1.HostPathUnset, true, ""},
		{missing + "-d", corev1.HostPathDirectoryOrCreate, true, "dir"},
		{filepath.Join(missing+"-f", "f"), corev1.HostPathFileOrCreate, true, "file"},
		{file, corev1.HostPathDirectoryOrCreate, false, ""},
		{dir, corev1.HostPathDirectory, true, ""},
		{missing, corev1.HostPathDirectory, false, ""},
		{file, corev1.HostPathDirectory, false, ""},
		{file, corev1.HostPathFile, true, ""},
		{dir, corev1.HostPathFile, false, ""},
		{sock, corev1.HostPathSocket, true, ""},
		{file, corev1.HostPathSocket, false, ""},
		{"/dev/null", corev1.HostPathCharDev, true, ""},
		{file, corev1.HostPathBlockDev, false, ""},
	} {
		typ := tc.typ
		err := CheckHostPath(tc.path, &typ)
		if (err == nil) != tc.ok {
			t.Errorf("%s %q: err %v, want ok=%v", tc.path, tc.typ, err, tc.ok)
			continue
		}
		if tc.create != "" {
			fi, err := os.Stat(tc.path)
			if err != nil || fi.IsDir() != (tc.create == "dir") {
				t.Errorf("%s %q: not created as a %s: %v", tc.path, tc.typ, tc.create, err)
			}
		}
	}
}
