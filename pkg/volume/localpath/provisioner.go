package localpath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"
)

// Config configures a node's Provisioner.
type Config struct {
	// NodeName is the node this provisioner serves; it provisions only
	// claims the scheduler selected this node for.
	NodeName string
	Client   kubernetes.Interface
	// Dir holds the volumes (<data-dir>/storage); created with mode 0700.
	Dir string
	// Recorder records events; Run makes one when nil.
	Recorder record.EventRecorder
	Log      *slog.Logger
}

// Provisioner creates and removes local-path volumes on one node. It is a
// controller with a queue of keys: "c/<ns>/<name>" for claims and
// "v/<name>" for volumes.
type Provisioner struct {
	cfg     Config
	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
	queue   workqueue.TypedRateLimitingInterface[string]
	factory informers.SharedInformerFactory
}

// New returns a Provisioner; Run starts it.
func New(cfg Config) (*Provisioner, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	// Claims and volumes are watched cluster-wide: the selected-node
	// annotation cannot be field-selected, and claims are few.
	f := informers.NewSharedInformerFactory(cfg.Client, 10*time.Minute)
	p := &Provisioner{
		cfg:     cfg,
		factory: f,
		claims:  f.Core().V1().PersistentVolumeClaims().Lister(),
		volumes: f.Core().V1().PersistentVolumes().Lister(),
		classes: f.Storage().V1().StorageClasses().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "local-path"}),
	}
	enqueue := func(prefix string) cache.ResourceEventHandlerFuncs {
		add := func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				p.queue.Add(prefix + key)
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }}
	}
	if _, err := f.Core().V1().PersistentVolumeClaims().Informer().AddEventHandler(enqueue("c/")); err != nil {
		return nil, err
	}
	if _, err := f.Core().V1().PersistentVolumes().Informer().AddEventHandler(enqueue("v/")); err != nil {
		return nil, err
	}
	f.Storage().V1().StorageClasses().Informer()
	return p, nil
}

// Run provisions and deletes volumes until ctx ends.
func (p *Provisioner) Run(ctx context.Context) error {
	f := p.factory
	defer f.Shutdown()
	defer p.queue.ShutDown()
	if p.cfg.Recorder == nil {
		b := record.NewBroadcaster(record.WithContext(ctx))
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.cfg.Client.CoreV1().Events("")})
		defer b.Shutdown()
		p.cfg.Recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: ProvisionerName + "_" + p.cfg.NodeName})
	}
	if err := os.MkdirAll(p.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("local-path storage dir: %w", err)
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("local-path: %v informer did not sync", typ)
		}
	}
	go func() {
		<-ctx.Done()
		p.queue.ShutDown()
	}()
	for p.processNext(ctx) {
	}
	return nil
}

func (p *Provisioner) processNext(ctx context.Context) bool {
	key, quit := p.queue.Get()
	if quit {
		return false
	}
	defer p.queue.Done(key)
	if err := p.Sync(ctx, key); err != nil {
		p.cfg.Log.Warn("local-path sync", "key", key, "err", err)
		p.queue.AddRateLimited(key)
		return true
	}
	p.queue.Forget(key)
	return true
}

// Sync handles one queue key; it is safe to repeat.
func (p *Provisioner) Sync(ctx context.Context, key string) error {
	if len(key) < 2 {
		return nil
	}
	switch key[:2] {
	case "c/":
		ns, name, err := cache.SplitMetaNamespaceKey(key[2:])
		if err != nil {
			return nil
		}
		return p.syncClaim(ctx, ns, name)
	case "v/":
		return p.syncVolume(ctx, key[2:])
	}
	return nil
}

// VolumeName is the PV name for a claim, as upstream's provisioners name
// it.
func VolumeName(claim *corev1.PersistentVolumeClaim) string { return "pvc-" + string(claim.UID) }

// volumeDir is where a claim's data lives: pvc-<uid>_<ns>_<name>, as k3s
// names it, so an operator can tell whose it is.
func (p *Provisioner) volumeDir(claim *corev1.PersistentVolumeClaim) string {
	return filepath.Join(p.cfg.Dir, fmt.Sprintf("%s_%s_%s", VolumeName(claim), claim.Namespace, claim.Name))
}

// wantsUs reports whether the claim waits for this node's provisioner.
func (p *Provisioner) wantsUs(claim *corev1.PersistentVolumeClaim) bool {
	a := claim.Annotations
	if claim.Spec.VolumeName != "" || claim.DeletionTimestamp != nil || a[volumehelpers.AnnSelectedNode] != p.cfg.NodeName {
		return false
	}
	return a[volumehelpers.AnnStorageProvisioner] == ProvisionerName || a[volumehelpers.AnnBetaStorageProvisioner] == ProvisionerName
}

func (p *Provisioner) syncClaim(ctx context.Context, ns, name string) error {
	claim, err := p.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !p.wantsUs(claim) {
		return nil
	}
	pvName := VolumeName(claim)
	if _, err := p.volumes.Get(pvName); err == nil {
		return nil // provisioned already; the binder finishes the bind
	}
	className := ptr.Deref(claim.Spec.StorageClassName, "")
	if className == "" {
		className = claim.Annotations[corev1.BetaStorageClassAnnotation]
	}
	class, err := p.classes.Get(className)
	if err != nil {
		p.cfg.Recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "storageclass.storage.k8s.io %q not found", className)
		return fmt.Errorf("claim %s/%s: storage class %q: %w", ns, name, className, err)
	}
	if claim.Spec.VolumeMode != nil && *claim.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		p.cfg.Recorder.Event(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume: local-path provides only volumeMode Filesystem")
		return nil
	}
	size, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		p.cfg.Recorder.Event(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume: claim requests no storage")
		return nil
	}
	p.cfg.Recorder.Eventf(claim, corev1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim %q", ns+"/"+name)
	dir := p.volumeDir(claim)
	if err := os.MkdirAll(p.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("storage dir: %w", err)
	}
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		p.cfg.Recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume: %v", err)
		return fmt.Errorf("volume dir: %w", err)
	}
	// The umask trimmed the mode: any user in the pod may write, as k3s.
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("volume dir: %w", err)
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName, Annotations: map[string]string{volumehelpers.AnnDynamicallyProvisioned: ProvisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   claim.Spec.AccessModes,
			StorageClassName:              class.Name,
			PersistentVolumeReclaimPolicy: reclaim,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			MountOptions:                  class.MountOptions,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{p.cfg.NodeName}}},
			}}}},
		},
	}
	if _, err := p.cfg.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		p.cfg.Recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to create volume %s: %v", pvName, err)
		return fmt.Errorf("create persistent volume %s: %w", pvName, err)
	}
	p.cfg.Recorder.Eventf(claim, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pvName)
	return nil
}

// onThisNode reports whether a volume's node affinity pins it to this
// node alone.
func (p *Provisioner) onThisNode(pv *corev1.PersistentVolume) bool {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) != 1 {
		return false
	}
	for _, r := range na.Required.NodeSelectorTerms[0].MatchExpressions {
		if r.Key == corev1.LabelHostname && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 && r.Values[0] == p.cfg.NodeName {
			return true
		}
	}
	return false
}

func (p *Provisioner) syncVolume(ctx context.Context, name string) error {
	pv, err := p.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pv.Annotations[volumehelpers.AnnDynamicallyProvisioned] != ProvisionerName || !p.onThisNode(pv) || pv.DeletionTimestamp != nil ||
		pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return nil
	}
	if pv.Spec.Local == nil {
		return nil
	}
	dir := filepath.Clean(pv.Spec.Local.Path)
	// Only ever remove a directory this provisioner made: a direct child
	// of the storage dir.
	if filepath.Dir(dir) != filepath.Clean(p.cfg.Dir) {
		p.cfg.Recorder.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "path %s is not under the local-path storage dir %s", dir, p.cfg.Dir)
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		p.cfg.Recorder.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "remove %s: %v", dir, err)
		return fmt.Errorf("remove volume dir %s: %w", dir, err)
	}
	err = p.cfg.Client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete persistent volume %s: %w", name, err)
	}
	p.cfg.Log.Info("deleted local-path volume", "pv", name, "dir", dir)
	return nil
}
