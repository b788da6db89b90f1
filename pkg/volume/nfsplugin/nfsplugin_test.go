package nfsplugin

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/pkg/volume"
	"github.com/skiff/skiff/pkg/volume/nfs"
)

// recordingMounter records what it is asked to mount and unmount.
type recordingMounter struct {
	mounted   []nfs.Source
	unmounted []string
}

func (r *recordingMounter) Mount(_ context.Context, src nfs.Source, _ string) error {
	r.mounted = append(r.mounted, src)
	return nil
}

func (r *recordingMounter) Unmount(target string) error {
	r.unmounted = append(r.unmounted, target)
	return nil
}

func nfsSpec(readOnly bool) (inline, pv *volume.Spec) {
	src := &corev1.NFSVolumeSource{Server: "10.0.0.1", Path: "/export", ReadOnly: readOnly}
	inline = &volume.Spec{Name: "v", Inline: &corev1.VolumeSource{NFS: src}}
	pv = &volume.Spec{PV: &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{NFS: src},
	}}}
	return inline, pv
}

func TestCanSupport(t *testing.T) {
	p := New(&recordingMounter{})
	inline, pv := nfsSpec(false)
	if !p.CanSupport(inline) || !p.CanSupport(pv) {
		t.Fatal("nfs volumes not supported")
	}
	for _, other := range []*volume.Spec{
		{Inline: &corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{PV: &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}}}},
	} {
		if p.CanSupport(other) {
			t.Fatalf("supports %+v", other)
		}
	}
}

// The export is mounted with the source's server, path and readOnly;
// a pod's own readOnly is applied at publish, not at the shared stage.
func TestStageMountsTheExport(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		m := &recordingMounter{}
		p := New(m)
		inline, _ := nfsSpec(readOnly)
		inline.ReadOnly = true
		if err := p.NodeStage(context.Background(), &volume.StageRequest{VolumeID: "v", Spec: inline, StagingPath: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		want := nfs.Source{Server: "10.0.0.1", Path: "/export", ReadOnly: readOnly}
		if len(m.mounted) != 1 || m.mounted[0] != want {
			t.Fatalf("mounted %+v, want %+v", m.mounted, want)
		}
	}
}

func TestStageRefusesOtherVolumes(t *testing.T) {
	m := &recordingMounter{}
	err := New(m).NodeStage(context.Background(), &volume.StageRequest{
		VolumeID: "v", Spec: &volume.Spec{Inline: &corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}, StagingPath: t.TempDir(),
	})
	if err == nil || len(m.mounted) != 0 {
		t.Fatalf("staged a non-NFS volume: %v, %+v", err, m.mounted)
	}
}

// Unstaging unmounts the staging path; one already gone is done.
func TestUnstage(t *testing.T) {
	m := &recordingMounter{}
	p := New(m)
	staging := t.TempDir()
	if err := p.NodeUnstage(context.Background(), "v", staging); err != nil {
		t.Fatal(err)
	}
	if err := p.NodeUnstage(context.Background(), "v", filepath.Join(staging, "gone")); err != nil {
		t.Fatal(err)
	}
	if len(m.unmounted) != 1 || m.unmounted[0] != staging {
		t.Fatalf("unmounted %v", m.unmounted)
	}
}

// Publishing bind-mounts the staged export into the pod, read-only when
// the pod asks; unpublishing removes the bind mount.
func TestPublishBindsReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	p := New(&recordingMounter{})
	staging, target := t.TempDir(), filepath.Join(t.TempDir(), "vol")
	if err := os.WriteFile(filepath.Join(staging, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	inline, _ := nfsSpec(false)
	if err := p.NodePublish(context.Background(), &volume.PublishRequest{VolumeID: "v", Spec: inline, StagingPath: staging, TargetPath: target, ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.NodeUnpublish(context.Background(), "v", target) })
	if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "x" {
		t.Fatalf("published volume reads %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "g"), nil, 0o644); err == nil {
		t.Fatal("wrote through a read-only publish")
	}
	if err := p.NodeUnpublish(context.Background(), "v", target); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "f")); err == nil {
		t.Fatal("still bind-mounted after unpublish")
	}
}
