// Package nodedir mounts persistent volumes that are a path on the node
// (spec.hostPath and spec.local) into pods: NodePublish bind-mounts the
// path, recursively, at the pod's target, read-only when asked. There is
// nothing to stage. It also holds the hostPath type check the kubelet's
// inline hostPath volumes share.
package nodedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff/skiff/pkg/mounts"
	"github.com/skiff/skiff/pkg/volume"
)

// PluginName is the plugin's name.
const PluginName = "skiff.io/node-dir"

// Plugin mounts hostPath and local persistent volumes.
type Plugin struct{}

var _ volume.Plugin = Plugin{}

// New returns the plugin.
func New() Plugin { return Plugin{} }

// Name returns PluginName.
func (Plugin) Name() string { return PluginName }

// CanSupport reports whether spec is a PV with spec.hostPath or spec.local.
func (Plugin) CanSupport(spec *volume.Spec) bool {
	return spec.PV != nil && (spec.PV.Spec.HostPath != nil || spec.PV.Spec.Local != nil)
}

// SupportsOwnership reports whether the kubelet should apply the pod's
// fsGroup: for local volumes, as upstream does, not for hostPath ones.
func (Plugin) SupportsOwnership(spec *volume.Spec) bool {
	return spec.PV != nil && spec.PV.Spec.Local != nil
}

// NodeStage does nothing: a node path needs no per-node mount.
func (Plugin) NodeStage(context.Context, *volume.StageRequest) error { return nil }

// NodeUnstage does nothing.
func (Plugin) NodeUnstage(context.Context, string, string) error { return nil }

// source is the node path of spec, checked as its type asks.
func source(spec *volume.Spec) (string, error) {
	if spec == nil || spec.PV == nil {
		return "", errors.New("not a persistent volume")
	}
	switch pv := spec.PV.Spec; {
	case pv.HostPath != nil:
		return pv.HostPath.Path, CheckHostPath(pv.HostPath.Path, pv.HostPath.Type)
	case pv.Local != nil:
		if _, err := os.Stat(pv.Local.Path); err != nil {
			return "", fmt.Errorf("local volume path: %w", err)
		}
		return pv.Local.Path, nil
	}
	return "", fmt.Errorf("persistent volume %s is neither hostPath nor local", spec.PV.Name)
}

// NodePublish bind-mounts the volume's path at req.TargetPath.
func (Plugin) NodePublish(_ context.Context, req *volume.PublishRequest) error {
	src, err := source(req.Spec)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	return Bind(src, req.TargetPath, fi.IsDir(), req.ReadOnly)
}

// Bind bind-mounts src (a directory, or a file when !dir) at target,
// creating target, read-only when readOnly; a target already mounted is
// left as it is, so publishing twice is harmless.
func Bind(src, target string, dir, readOnly bool) error {
	if err := makeTarget(target, dir); err != nil {
		return err
	}
	if mounted, err := mountinfo.Mounted(target); err != nil {
		return fmt.Errorf("check mount %s: %w", target, err)
	} else if mounted {
		return nil
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s at %s: %w", src, target, err)
	}
	if readOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

func makeTarget(path string, dir bool) error {
	if dir {
		if err := os.MkdirAll(path, 0o750); err != nil {
			return fmt.Errorf("create target %s: %w", path, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create target %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("create target %s: %w", path, err)
	}
	return f.Close()
}

// NodeUnpublish unmounts targetPath and everything below it.
func (Plugin) NodeUnpublish(_ context.Context, _ string, targetPath string) error {
	if err := mounts.UnmountUnder(targetPath); err != nil {
		return fmt.Errorf("unpublish %s: %w", targetPath, err)
	}
	return nil
}
