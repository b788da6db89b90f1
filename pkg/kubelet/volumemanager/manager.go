// Package volumemanager mounts the pod volumes that volume plugins serve
// (persistentVolumeClaim and ephemeral claims resolved to their
// PersistentVolume, and inline sources such as gitRepo and nfs), in the
// order CSI's node service asks: NodeStage once per node and volume,
// NodePublish into each pod's volume directory, NodeUnpublish when the
// pod goes, NodeUnstage when its last pod has gone.
//
// Every step is recorded on disk under the kubelet's root directory
// before it is taken, so a kubelet restarted (or killed) in between can
// still undo it; a volume's stage reference count is the number of
// publication records naming it, so it cannot drift from what is
// mounted. Records are written atomically (rename) and plugins are
// idempotent, so any step may be repeated.
package volumemanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff/skiff/pkg/mounts"
	"github.com/skiff/skiff/pkg/volume"
	"github.com/skiff/skiff/pkg/volume/ownership"
)

// OwnershipSupporter is implemented by plugins whose volumes take the
// pod's fsGroup (local volumes, gitRepo); the manager applies it after
// NodePublish. Plugins that do not implement it (hostPath, nfs) keep the
// files' owners, as upstream does.
type OwnershipSupporter interface {
	SupportsOwnership(spec *volume.Spec) bool
}

// Config configures a Manager.
type Config struct {
	// RootDir is the kubelet's root: records go under
	// volume-manager/, staging directories under plugins/.
	RootDir string
	// Client reads claims and persistent volumes.
	Client kubernetes.Interface
	// Plugins are asked in order; the first that supports a volume
	// mounts it.
	Plugins []volume.Plugin
	// BootID identifies the node's boot (default: the kernel's
	// boot_id); records from another boot are redone, since mounts do
	// not survive a reboot.
	BootID string
	Log    *slog.Logger
}

// Manager mounts plugin-served volumes into pods.
type Manager struct {
	cfg Config

	mu sync.Mutex
	// locks serialize the steps on one volume (by volumeKey), so a pod
	// tearing down cannot unstage a volume another pod is publishing.
	// One small mutex per volume ever used on the node.
	locks map[string]*sync.Mutex
}

// New returns a Manager.
func New(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.BootID == "" {
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			cfg.BootID = strings.TrimSpace(string(b))
		}
	}
	return &Manager{cfg: cfg, locks: map[string]*sync.Mutex{}}
}

func (m *Manager) lock(plugin, volumeID string) func() {
	k := volumeKey(plugin, volumeID)
	m.mu.Lock()
	l, ok := m.locks[k]
	if !ok {
		l = &sync.Mutex{}
		m.locks[k] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Handles reports whether the manager mounts v: a claim, or an inline
// source one of its plugins supports.
func (m *Manager) Handles(v *corev1.Volume) bool {
	if v.PersistentVolumeClaim != nil || v.Ephemeral != nil {
		return true
	}
	return m.plugin(&volume.Spec{Name: v.Name, Inline: &v.VolumeSource}) != nil
}

func (m *Manager) plugin(spec *volume.Spec) volume.Plugin {
	for _, p := range m.cfg.Plugins {
		if p.CanSupport(spec) {
			return p
		}
	}
	return nil
}

func (m *Manager) pluginNamed(name string) volume.Plugin {
	for _, p := range m.cfg.Plugins {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// SetUp makes pod's volume v appear at target: it stages the volume if
// no pod on the node has, then publishes it, then applies the pod's
// fsGroup if the plugin takes one. A volume already published in this
// boot costs one small file read and no API call.
func (m *Manager) SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, target string) error {
	var rec publication
	ok, err := readRecord(m.publicationFile(pod.UID, v.Name), &rec)
	if err != nil {
		return err
	}
	if ok && rec.Published && rec.BootID == m.cfg.BootID && rec.TargetPath == target {
		return nil
	}
	spec, err := m.resolve(ctx, pod, v)
	if err != nil {
		return err
	}
	p := m.plugin(spec)
	if p == nil {
		return fmt.Errorf("no volume plugin mounts volume %q", v.Name)
	}
	volumeID := string(pod.UID) + "-" + v.Name
	if spec.PV != nil {
		volumeID = spec.PV.Name
	}
	unlock := m.lock(p.Name(), volumeID)
	defer unlock()
	stagingPath, err := m.stage(ctx, p, volumeID, spec)
	if err != nil {
		return err
	}
	rec = publication{
		PodUID: pod.UID, Volume: v.Name, Plugin: p.Name(), VolumeID: volumeID,
		StagingPath: stagingPath, TargetPath: target, BootID: m.cfg.BootID,
	}
	path := m.publicationFile(pod.UID, v.Name)
	if err := writeRecord(path, rec); err != nil {
		return err
	}
	err = p.NodePublish(ctx, &volume.PublishRequest{
		VolumeID: volumeID, Spec: spec, StagingPath: stagingPath,
		TargetPath: target, ReadOnly: spec.ReadOnly, Pod: pod,
	})
	if err != nil {
		return fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", v.Name, err)
	}
	if o, ok := p.(OwnershipSupporter); ok && !spec.ReadOnly && o.SupportsOwnership(spec) {
		if err := ownership.ForPod(pod, target, false); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	rec.Published = true
	return writeRecord(path, rec)
}

// stage stages the volume unless it is staged in this boot, and returns
// its staging path. The caller holds the volume's lock.
func (m *Manager) stage(ctx context.Context, p volume.Plugin, volumeID string, spec *volume.Spec) (string, error) {
	path := m.stagingFile(p.Name(), volumeID)
	var rec staging
	ok, err := readRecord(path, &rec)
	if err != nil {
		return "", err
	}
	if ok && rec.Staged && rec.BootID == m.cfg.BootID {
		return rec.StagingPath, nil
	}
	rec = staging{Plugin: p.Name(), VolumeID: volumeID, StagingPath: m.stagingPath(p.Name(), volumeID), BootID: m.cfg.BootID}
	if err := writeRecord(path, rec); err != nil {
		return "", err
	}
	if err := os.MkdirAll(rec.StagingPath, 0o750); err != nil {
		return "", fmt.Errorf("create staging path: %w", err)
	}
	if err := p.NodeStage(ctx, &volume.StageRequest{VolumeID: volumeID, Spec: spec, StagingPath: rec.StagingPath}); err != nil {
		return "", fmt.Errorf("MountVolume.MountDevice failed for volume %q: %w", spec.Name, err)
	}
	rec.Staged = true
	return rec.StagingPath, writeRecord(path, rec)
}

// resolve turns a pod volume into a plugin's Spec, reading a claim's
// PersistentVolume from the API.
func (m *Manager) resolve(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (*volume.Spec, error) {
	spec := &volume.Spec{Name: v.Name}
	var claimName string
	switch {
	case v.PersistentVolumeClaim != nil:
		claimName = v.PersistentVolumeClaim.ClaimName
		spec.ReadOnly = v.PersistentVolumeClaim.ReadOnly
	case v.Ephemeral != nil:
		// The ephemeral volume controller names the claim after both.
		claimName = pod.Name + "-" + v.Name
	default:
		spec.Inline = &v.VolumeSource
		if v.NFS != nil {
			spec.ReadOnly = v.NFS.ReadOnly
		}
		return spec, nil
	}
	claim, err := m.cfg.Client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, claimName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("volume %q: get persistentvolumeclaim %s/%s: %w", v.Name, pod.Namespace, claimName, err)
	}
	if v.Ephemeral != nil && !metav1.IsControlledBy(claim, pod) {
		return nil, fmt.Errorf("volume %q: persistentvolumeclaim %s/%s was not created for the pod", v.Name, pod.Namespace, claimName)
	}
	if claim.DeletionTimestamp != nil {
		return nil, fmt.Errorf("volume %q: persistentvolumeclaim %s/%s is being deleted", v.Name, pod.Namespace, claimName)
	}
	if claim.Status.Phase != corev1.ClaimBound || claim.Spec.VolumeName == "" {
		return nil, fmt.Errorf("volume %q: persistentvolumeclaim %s/%s is not bound (phase %q, volumeName %q)", v.Name, pod.Namespace, claimName, claim.Status.Phase, claim.Spec.VolumeName)
	}
	pv, err := m.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("volume %q: get persistentvolume %s: %w", v.Name, claim.Spec.VolumeName, err)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace != claim.Namespace || ref.Name != claim.Name || (ref.UID != "" && ref.UID != claim.UID) {
		return nil, fmt.Errorf("volume %q: persistentvolume %s is not bound to claim %s/%s", v.Name, pv.Name, claim.Namespace, claim.Name)
	}
	spec.PV = pv
	if onlyReadOnlyMany(pv.Spec.AccessModes) {
		spec.ReadOnly = true
	}
	return spec, nil
}

func onlyReadOnlyMany(modes []corev1.PersistentVolumeAccessMode) bool {
	if len(modes) == 0 {
		return false
	}
	for _, m := range modes {
		if m != corev1.ReadOnlyMany {
			return false
		}
	}
	return true
}

// TearDownPod unpublishes every volume published into the pod and
// unstages those no other pod uses. It works from the records alone, so
// it needs neither the pod nor its directory.
func (m *Manager) TearDownPod(ctx context.Context, uid types.UID) error {
	recs, err := m.publications()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		if r.PodUID == uid {
			errs = append(errs, m.unpublish(ctx, r))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) unpublish(ctx context.Context, r publication) error {
	unlock := m.lock(r.Plugin, r.VolumeID)
	defer unlock()
	if p := m.pluginNamed(r.Plugin); p != nil {
		if err := p.NodeUnpublish(ctx, r.VolumeID, r.TargetPath); err != nil {
			return fmt.Errorf("UnmountVolume.TearDown failed for volume %q of pod %s: %w", r.Volume, r.PodUID, err)
		}
	} else {
		m.cfg.Log.Warn("volume plugin not registered: unmounting its target", "plugin", r.Plugin, "volume", r.Volume, "pod", r.PodUID)
	}
	// Whatever the plugin did, nothing stays mounted at the target.
	if err := mounts.UnmountUnder(r.TargetPath); err != nil {
		return fmt.Errorf("volume %q of pod %s: %w", r.Volume, r.PodUID, err)
	}
	if err := removeRecord(m.publicationFile(r.PodUID, r.Volume)); err != nil {
		return err
	}
	return m.unstageIfUnused(ctx, r.Plugin, r.VolumeID)
}

// unstageIfUnused unstages a volume no publication names. The caller
// holds the volume's lock.
func (m *Manager) unstageIfUnused(ctx context.Context, plugin, volumeID string) error {
	recs, err := m.publications()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Plugin == plugin && r.VolumeID == volumeID {
			return nil
		}
	}
	path := m.stagingFile(plugin, volumeID)
	var rec staging
	ok, err := readRecord(path, &rec)
	if err != nil || !ok {
		return err
	}
	if p := m.pluginNamed(plugin); p != nil {
		if err := p.NodeUnstage(ctx, volumeID, rec.StagingPath); err != nil {
			return fmt.Errorf("UnmountDevice failed for volume %s: %w", volumeID, err)
		}
	}
	if err := mounts.UnmountUnder(rec.StagingPath); err != nil {
		return fmt.Errorf("unstage volume %s: %w", volumeID, err)
	}
	// Nothing is mounted there any more, so removing cannot reach into
	// the volume's storage.
	if err := os.RemoveAll(rec.StagingPath); err != nil {
		return fmt.Errorf("unstage volume %s: %w", volumeID, err)
	}
	return removeRecord(path)
}

// CleanOrphans tears down the volumes of pods that alive says are gone
// (deleted while the kubelet was down) and unstages volumes no pod
// publishes (a kubelet killed between unpublish and unstage).
func (m *Manager) CleanOrphans(ctx context.Context, alive func(types.UID) bool) error {
	recs, err := m.publications()
	if err != nil {
		return err
	}
	var errs []error
	done := map[types.UID]bool{}
	for _, r := range recs {
		if alive(r.PodUID) || done[r.PodUID] {
			continue
		}
		done[r.PodUID] = true
		m.cfg.Log.Info("cleaning up volumes of a removed pod", "pod", r.PodUID)
		errs = append(errs, m.TearDownPod(ctx, r.PodUID))
	}
	stagings, err := m.stagings()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, s := range stagings {
		unlock := m.lock(s.Plugin, s.VolumeID)
		errs = append(errs, m.unstageIfUnused(ctx, s.Plugin, s.VolumeID))
		unlock()
	}
	return errors.Join(errs...)
}

// Published lists the pods with a volume published on the node.
func (m *Manager) Published() ([]types.UID, error) {
	recs, err := m.publications()
	if err != nil {
		return nil, err
	}
	seen := map[types.UID]bool{}
	var out []types.UID
	for _, r := range recs {
		if !seen[r.PodUID] {
			seen[r.PodUID] = true
			out = append(out, r.PodUID)
		}
	}
	return out, nil
}
