// Package volume is the seam between the kubelet's volume manager and the
// volume plugins that mount storage into pods. A plugin has the shape of
// CSI's node service: NodeStage mounts a volume once per node at a staging
// path, NodePublish makes it visible at one pod's target path, and
// NodeUnpublish and NodeUnstage undo them. Every call is idempotent, as
// CSI requires, so the kubelet may repeat any of them after a restart.
// An external CSI driver plugs in behind the same interface as a client
// of the driver's unix socket (docs/adr/ has the design).
package volume

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// Spec is one volume to mount: an inline pod volume or the persistent
// volume a claim is bound to.
type Spec struct {
	// Name is the pod's name for the volume (spec.volumes[].name).
	Name string
	// Inline is set for a volume source written in the pod.
	Inline *corev1.VolumeSource
	// PV is set for a persistent volume reached through a claim.
	PV *corev1.PersistentVolume
	// ReadOnly is set when the pod or its claim reference asked for a
	// read-only mount.
	ReadOnly bool
}

// StageRequest asks for a volume to be mounted once on the node.
type StageRequest struct {
	// VolumeID names the volume on the node, unique per plugin (a PV's
	// name, or the pod UID and volume name for inline volumes).
	VolumeID string
	Spec     *Spec
	// StagingPath is an existing directory private to the plugin and
	// this volume.
	StagingPath string
}

// PublishRequest asks for a staged volume to appear at a pod's path.
type PublishRequest struct {
	VolumeID    string
	Spec        *Spec
	StagingPath string
	// TargetPath is the pod's directory for the volume; the plugin
	// creates it if it is missing.
	TargetPath string
	ReadOnly   bool
	// Pod is the pod the volume is published for (fsGroup, gitRepo).
	Pod *corev1.Pod
}

// Plugin mounts one kind of volume source.
type Plugin interface {
	// Name is the plugin's name, as upstream's (kubernetes.io/nfs, ...).
	Name() string
	// CanSupport reports whether the plugin mounts spec.
	CanSupport(spec *Spec) bool
	// NodeStage mounts the volume at req.StagingPath; plugins with
	// nothing to share between pods do nothing.
	NodeStage(ctx context.Context, req *StageRequest) error
	// NodeUnstage undoes NodeStage once no pod publishes the volume.
	NodeUnstage(ctx context.Context, volumeID, stagingPath string) error
	// NodePublish makes the volume visible at req.TargetPath.
	NodePublish(ctx context.Context, req *PublishRequest) error
	// NodeUnpublish removes the volume from targetPath, leaving the
	// directory empty and unmounted.
	NodeUnpublish(ctx context.Context, volumeID, targetPath string) error
}
