// Package nfsplugin is the volume plugin for NFS: inline nfs volumes and
// persistent volumes with spec.nfs. It mounts an export once per node at
// the volume's staging path and bind-mounts that into each pod using it.
package nfsplugin

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/pkg/mounts"
	"github.com/skiff/skiff/pkg/volume"
	"github.com/skiff/skiff/pkg/volume/nfs"
	"github.com/skiff/skiff/pkg/volume/nodedir"
)

// Name is upstream's plugin name.
const Name = "kubernetes.io/nfs"

// Mounter mounts and unmounts NFS exports; nfs.Mounter is the real one.
type Mounter interface {
	Mount(ctx context.Context, src nfs.Source, target string) error
	Unmount(target string) error
}

// KernelOrFUSE is the node's NFS mounter: the kernel's client, or the
// FUSE helper where the kernel has none.
type KernelOrFUSE struct{ nfs.Mounter }

// Unmount unmounts an export mounted by Mount.
func (KernelOrFUSE) Unmount(target string) error { return nfs.Unmount(target) }

// Plugin mounts NFS volumes.
type Plugin struct{ mounter Mounter }

// New returns the plugin mounting through m.
func New(m Mounter) *Plugin { return &Plugin{mounter: m} }

var _ volume.Plugin = (*Plugin)(nil)

func (*Plugin) Name() string { return Name }

func (*Plugin) CanSupport(spec *volume.Spec) bool { return source(spec) != nil }

// source is the spec's export, nil for other volumes.
func source(spec *volume.Spec) *corev1.NFSVolumeSource {
	switch {
	case spec.Inline != nil:
		return spec.Inline.NFS
	case spec.PV != nil:
		return spec.PV.Spec.NFS
	}
	return nil
}

// NodeStage mounts the export at the staging path, read-only when the
// volume source says so (a pod's readOnly mount is applied at publish).
func (p *Plugin) NodeStage(ctx context.Context, req *volume.StageRequest) error {
	src := source(req.Spec)
	if src == nil {
		return fmt.Errorf("volume %s is not an nfs volume", req.VolumeID)
	}
	if mounted, err := mountinfo.Mounted(req.StagingPath); err != nil {
		return fmt.Errorf("check mount %s: %w", req.StagingPath, err)
	} else if mounted {
		return nil
	}
	if err := p.mounter.Mount(ctx, nfs.Source{Server: src.Server, Path: src.Path, ReadOnly: src.ReadOnly}, req.StagingPath); err != nil {
		return fmt.Errorf("mount nfs %s:%s: %w", src.Server, src.Path, err)
	}
	return nil
}

// NodeUnstage unmounts the export.
func (p *Plugin) NodeUnstage(_ context.Context, volumeID, stagingPath string) error {
	if _, err := os.Stat(stagingPath); os.IsNotExist(err) {
		return nil
	}
	if err := p.mounter.Unmount(stagingPath); err != nil {
		return fmt.Errorf("unmount nfs volume %s: %w", volumeID, err)
	}
	return nil
}

// NodePublish bind-mounts the staged export at the pod's path.
func (*Plugin) NodePublish(_ context.Context, req *volume.PublishRequest) error {
	src := source(req.Spec)
	if src == nil {
		return fmt.Errorf("volume %s is not an nfs volume", req.VolumeID)
	}
	return nodedir.Bind(req.StagingPath, req.TargetPath, true, req.ReadOnly || src.ReadOnly)
}

// NodeUnpublish unmounts the pod's bind mount.
func (*Plugin) NodeUnpublish(_ context.Context, _ string, targetPath string) error {
	if err := mounts.UnmountUnder(targetPath); err != nil {
		return fmt.Errorf("unpublish %s: %w", targetPath, err)
	}
	return nil
}
