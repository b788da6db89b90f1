// Package persistentvolume binds PersistentVolumeClaims to
// PersistentVolumes as upstream's PV controller does: a Pending claim gets
// the smallest Available volume that satisfies it (class, access modes,
// capacity, selector, volume mode, pre-binding either way), or is handed
// to its class's external provisioner; a bound claim whose volume is gone
// is Lost; a volume whose claim is gone is Released and reclaimed by its
// policy. Claims in WaitForFirstConsumer classes are left to the
// scheduler until it selects a node.
package persistentvolume

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/recorder"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// Event reasons, as upstream's.
const (
	EventFailedBinding        = "FailedBinding"
	EventWaitForFirstConsumer = "WaitForFirstConsumer"
	EventExternalProvisioning = "ExternalProvisioning"
	EventProvisioningFailed   = "ProvisioningFailed"
	EventVolumeMismatch       = "VolumeMismatch"
	EventClaimLost            = "ClaimLost"
	EventClaimMisbound        = "ClaimMisbound"
	EventVolumeFailedRecycle  = "VolumeFailedRecycle"
	EventVolumeFailedDelete   = "VolumeFailedDelete"
	EventVolumeDelete         = "VolumeDelete"
)

// ResyncPeriod is how often every claim and volume is synced again, as
// upstream's --pvclaimbinder-sync-period.
const ResyncPeriod = 15 * time.Second

// claimRefIndex indexes volumes by the "namespace/name" of their claimRef.
const claimRefIndex = "claimRef"

// Controller binds claims to volumes and reclaims released volumes.
type Controller struct {
	client   kubernetes.Interface
	volumes  corelisters.PersistentVolumeLister
	claims   corelisters.PersistentVolumeClaimLister
	classes  storagelisters.StorageClassLister
	byClaim  cache.Indexer
	claimQ   workqueue.TypedRateLimitingInterface[string]
	volumeQ  workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	clock    clock.WithTicker
	log      *slog.Logger
}

// New returns the controller over f's PV, PVC and StorageClass informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	pvInf := f.Core().V1().PersistentVolumes()
	pvcInf := f.Core().V1().PersistentVolumeClaims()
	scInf := f.Storage().V1().StorageClasses()
	queue := func(name string) workqueue.TypedRateLimitingInterface[string] {
		return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name, Clock: clk})
	}
	c := &Controller{
		client: client, volumes: pvInf.Lister(), claims: pvcInf.Lister(), classes: scInf.Lister(),
		byClaim: pvInf.Informer().GetIndexer(), claimQ: queue("claims"), volumeQ: queue("volumes"),
		recorder: &record.FakeRecorder{}, clock: clk, log: log,
	}
	if err := pvInf.Informer().AddIndexers(cache.Indexers{claimRefIndex: func(obj any) ([]string, error) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok && pv.Spec.ClaimRef != nil {
			return []string{pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("indexing volumes by claim: %w", err)
	}
	onVolume := func(pv *corev1.PersistentVolume) {
		c.volumeQ.Add(pv.Name)
		if ref := pv.Spec.ClaimRef; ref != nil {
			c.claimQ.Add(ref.Namespace + "/" + ref.Name)
		}
	}
	if _, err := pvInf.Informer().AddEventHandler(typedhandler.Funcs(onVolume,
		func(_, pv *corev1.PersistentVolume) { onVolume(pv) }, onVolume)); err != nil {
		return nil, err
	}
	onClaim := func(pvc *corev1.PersistentVolumeClaim) {
		key := pvc.Namespace + "/" + pvc.Name
		c.claimQ.Add(key)
		if pvc.Spec.VolumeName != "" {
			c.volumeQ.Add(pvc.Spec.VolumeName)
		}
		c.enqueueVolumesOf(key)
	}
	if _, err := pvcInf.Informer().AddEventHandler(typedhandler.Funcs(onClaim,
		func(_, pvc *corev1.PersistentVolumeClaim) { onClaim(pvc) }, onClaim)); err != nil {
		return nil, err
	}
	onClass := func(*storagev1.StorageClass) { c.enqueueAllClaims() }
	if _, err := scInf.Informer().AddEventHandler(typedhandler.Funcs(onClass,
		func(_, sc *storagev1.StorageClass) { onClass(sc) }, nil)); err != nil {
		return nil, err
	}
	return c, nil
}

// Run starts the event recorder and n workers per queue, and runs until
// ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, "persistentvolume-controller")
	defer stop()
	c.recorder = rec
	done := make(chan struct{})
	go func() {
		defer close(done)
		workers.Run(ctx, c.volumeQ, n, c.syncVolumeKey, c.log)
	}()
	go c.resync(ctx)
	workers.Run(ctx, c.claimQ, n, c.syncClaimKey, c.log)
	<-done
}

// resync enqueues everything every ResyncPeriod: binding decisions depend
// on other objects (a volume fitting a claim) whose events may have come
// while the claim was being worked on.
func (c *Controller) resync(ctx context.Context) {
	t := c.clock.NewTicker(ResyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			c.enqueueAllClaims()
			if pvs, err := c.volumes.List(labels.Everything()); err == nil {
				for _, pv := range pvs {
					c.volumeQ.Add(pv.Name)
				}
			}
		}
	}
}

func (c *Controller) enqueueAllClaims() {
	claims, err := c.claims.List(labels.Everything())
	if err != nil {
		return
	}
	for _, pvc := range claims {
		c.claimQ.Add(pvc.Namespace + "/" + pvc.Name)
	}
}

func (c *Controller) enqueueVolumesOf(claimKey string) {
	objs, err := c.byClaim.ByIndex(claimRefIndex, claimKey)
	if err != nil {
		return
	}
	for _, o := range objs {
		if pv, ok := o.(*corev1.PersistentVolume); ok {
			c.volumeQ.Add(pv.Name)
		}
	}
}

func (c *Controller) syncClaimKey(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.enqueueVolumesOf(key) // their claim is gone: release them
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.syncClaim(ctx, pvc.DeepCopy()); err != nil {
		return fmt.Errorf("sync claim %s: %w", key, err)
	}
	return nil
}

func (c *Controller) syncVolumeKey(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.syncVolume(ctx, pv.DeepCopy()); err != nil {
		return fmt.Errorf("sync volume %s: %w", name, err)
	}
	return nil
}

// syncClaim is upstream's syncClaim: claims that never completed binding
// are matched, the others are checked against their volume.
func (c *Controller) syncClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.DeletionTimestamp != nil {
		return nil // its volume is released once the claim is gone
	}
	if !metav1.HasAnnotation(pvc.ObjectMeta, volume.AnnBindCompleted) {
		return c.syncUnboundClaim(ctx, pvc)
	}
	return c.syncBoundClaim(ctx, pvc)
}

func (c *Controller) syncUnboundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.VolumeName == "" {
		delay, err := c.delayBinding(pvc)
		if err != nil {
			return err
		}
		pv, err := c.findBestMatch(pvc, delay)
		if err != nil {
			return err
		}
		if pv != nil {
			return c.bind(ctx, pv, pvc)
		}
		switch {
		case delay:
			c.recorder.Event(pvc, corev1.EventTypeNormal, EventWaitForFirstConsumer, "waiting for first consumer to be created before binding")
		case volume.GetPersistentVolumeClaimClass(pvc) != "":
			if err := c.provision(ctx, pvc); err != nil {
				return err
			}
		default:
			c.recorder.Event(pvc, corev1.EventTypeNormal, EventFailedBinding, "no persistent volumes available for this claim and no storage class is set")
		}
		return c.setClaimPending(ctx, pvc)
	}
	// The user (or the scheduler) asked for a volume by name.
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return c.setClaimPending(ctx, pvc)
	}
	if err != nil {
		return err
	}
	switch {
	case pv.Spec.ClaimRef == nil || volume.IsVolumeBoundToClaim(pv, pvc):
		if msg := mismatch(pv, pvc); msg != "" {
			c.recorder.Eventf(pvc, corev1.EventTypeWarning, EventVolumeMismatch, "Cannot bind to requested volume %q: %s", pv.Name, msg)
			return c.setClaimPending(ctx, pvc)
		}
		return c.bind(ctx, pv, pvc)
	case metav1.HasAnnotation(pvc.ObjectMeta, volume.AnnBoundByController):
		// We set volumeName ourselves, yet the volume went to another
		// claim: a race we lost; upstream treats it as an error.
		return fmt.Errorf("volume %s chosen for the claim is bound to %s/%s", pv.Name, pv.Spec.ClaimRef.Namespace, pv.Spec.ClaimRef.Name)
	default:
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, EventFailedBinding, "Cannot bind to requested volume %q: already bound to %q", pv.Name, pv.Spec.ClaimRef.Namespace+"/"+pv.Spec.ClaimRef.Name)
		return c.setClaimPending(ctx, pvc)
	}
}

func (c *Controller) syncBoundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.VolumeName == "" {
		return c.setClaimLost(ctx, pvc, EventClaimLost, "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
	}
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return c.setClaimLost(ctx, pvc, EventClaimLost, "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
	}
	if err != nil {
		return err
	}
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID == pvc.UID {
		// Finish (or repair) the binding: every step is a no-op when done.
		return c.bind(ctx, pv, pvc)
	}
	return c.setClaimLost(ctx, pvc, EventClaimMisbound, "Two claims are bound to the same volume, this one is bound incorrectly")
}

// delayBinding reports whether the claim waits for the scheduler: its
// class binds on first consumer and no node has been selected yet.
func (c *Controller) delayBinding(pvc *corev1.PersistentVolumeClaim) (bool, error) {
	if volume.IsDelayBindingProvisioning(pvc) {
		return false, nil
	}
	delay, err := volume.IsDelayBindingMode(pvc, c.classes)
	if err != nil {
		return false, fmt.Errorf("class of claim: %w", err)
	}
	return delay, nil
}

// findBestMatch returns the volume the claim should bind to, or nil: one
// pre-bound to it, else the smallest Available one that fits.
func (c *Controller) findBestMatch(pvc *corev1.PersistentVolumeClaim, delay bool) (*corev1.PersistentVolume, error) {
	all, err := c.volumes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	candidates := make([]*corev1.PersistentVolume, 0, len(all))
	for _, pv := range all {
		if volume.CheckAccessModes(pvc, pv) {
			candidates = append(candidates, pv)
		}
	}
	return volume.FindMatchingVolume(pvc, candidates, nil, nil, delay, false)
}

// mismatch says why a requested volume cannot satisfy the claim ("" when
// it can), as upstream's checkVolumeSatisfyClaim.
func mismatch(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) string {
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pv.Spec.Capacity[corev1.ResourceStorage]
	switch {
	case have.Cmp(want) < 0:
		return "requested PV is too small"
	case volume.GetPersistentVolumeClass(pv) != volume.GetPersistentVolumeClaimClass(pvc):
		return "storageClassName does not match"
	case volume.CheckVolumeModeMismatches(&pvc.Spec, &pv.Spec):
		return "incompatible volumeMode"
	case !volume.CheckAccessModes(pvc, pv):
		return "incompatible accessMode"
	}
	return ""
}

// provision hands the claim to its class's provisioner: skiff has no
// in-tree provisioners, so an external one (any name outside
// kubernetes.io/) is told through the claim's annotations, as upstream's
// provisionClaimOperationExternal.
func (c *Controller) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	className := volume.GetPersistentVolumeClaimClass(pvc)
	class, err := c.classes.Get(className)
	if apierrors.IsNotFound(err) {
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, EventProvisioningFailed, "storageclass.storage.k8s.io %q not found", className)
		return nil
	}
	if err != nil {
		return err
	}
	if strings.HasPrefix(class.Provisioner, "kubernetes.io/") {
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, EventProvisioningFailed, "no volume plugin matched name: %s", class.Provisioner)
		return nil
	}
	if pvc.Annotations[volume.AnnStorageProvisioner] != class.Provisioner || pvc.Annotations[volume.AnnBetaStorageProvisioner] != class.Provisioner {
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, volume.AnnStorageProvisioner, class.Provisioner)
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, volume.AnnBetaStorageProvisioner, class.Provisioner)
		out, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("annotate claim with its provisioner: %w", err)
		}
		*pvc = *out
	}
	c.recorder.Eventf(pvc, corev1.EventTypeNormal, EventExternalProvisioning,
		"Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", class.Provisioner)
	return nil
}

// bind completes the binding of pv and pvc in upstream's order: volume
// claimRef, volume phase, claim volumeName and annotations, claim phase.
// Each step writes only when something is missing.
func (c *Controller) bind(ctx context.Context, pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) error {
	bound, dirty, err := volume.GetBindVolumeToClaim(pv, pvc)
	if err != nil {
		return err
	}
	if dirty {
		if bound, err = c.client.CoreV1().PersistentVolumes().Update(ctx, bound, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("bind volume %s to claim: %w", pv.Name, err)
		}
	}
	if _, err := c.setVolumePhase(ctx, bound, corev1.VolumeBound); err != nil {
		return err
	}
	claim := pvc.DeepCopy()
	changed := false
	if claim.Spec.VolumeName != bound.Name {
		claim.Spec.VolumeName = bound.Name
		metav1.SetMetaDataAnnotation(&claim.ObjectMeta, volume.AnnBoundByController, "yes")
		changed = true
	}
	if !metav1.HasAnnotation(claim.ObjectMeta, volume.AnnBindCompleted) {
		metav1.SetMetaDataAnnotation(&claim.ObjectMeta, volume.AnnBindCompleted, "yes")
		changed = true
	}
	if changed {
		if claim, err = c.client.CoreV1().PersistentVolumeClaims(claim.Namespace).Update(ctx, claim, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("bind claim to volume %s: %w", bound.Name, err)
		}
	}
	capacity := bound.Spec.Capacity[corev1.ResourceStorage]
	have := claim.Status.Capacity[corev1.ResourceStorage]
	if claim.Status.Phase == corev1.ClaimBound && have.Cmp(capacity) == 0 && equalModes(claim.Status.AccessModes, bound.Spec.AccessModes) {
		return nil
	}
	claim.Status.Phase = corev1.ClaimBound
	claim.Status.AccessModes = bound.Spec.AccessModes
	claim.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: capacity}
	if _, err := c.client.CoreV1().PersistentVolumeClaims(claim.Namespace).UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set claim phase Bound: %w", err)
	}
	c.log.Info("bound claim to volume", "claim", claim.Namespace+"/"+claim.Name, "volume", bound.Name)
	return nil
}

func equalModes(a, b []corev1.PersistentVolumeAccessMode) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (c *Controller) setClaimPending(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	return c.setClaimPhase(ctx, pvc, corev1.ClaimPending)
}

func (c *Controller) setClaimLost(ctx context.Context, pvc *corev1.PersistentVolumeClaim, reason, msg string) error {
	if pvc.Status.Phase == corev1.ClaimLost {
		return nil
	}
	if err := c.setClaimPhase(ctx, pvc, corev1.ClaimLost); err != nil {
		return err
	}
	c.recorder.Event(pvc, corev1.EventTypeWarning, reason, msg)
	return nil
}

func (c *Controller) setClaimPhase(ctx context.Context, pvc *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase) error {
	if pvc.Status.Phase == phase {
		return nil
	}
	claim := pvc.DeepCopy()
	claim.Status.Phase = phase
	if phase != corev1.ClaimBound {
		claim.Status.AccessModes, claim.Status.Capacity = nil, nil
	}
	if _, err := c.client.CoreV1().PersistentVolumeClaims(claim.Namespace).UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set claim phase %s: %w", phase, err)
	}
	return nil
}

// setVolumePhase writes phase to pv's status when it differs, stamping
// lastPhaseTransitionTime, and returns the stored volume.
func (c *Controller) setVolumePhase(ctx context.Context, pv *corev1.PersistentVolume, phase corev1.PersistentVolumePhase) (*corev1.PersistentVolume, error) {
	if pv.Status.Phase == phase {
		return pv, nil
	}
	upd := pv.DeepCopy()
	upd.Status.Phase = phase
	now := metav1.NewTime(c.clock.Now())
	upd.Status.LastPhaseTransitionTime = &now
	if phase != corev1.VolumeFailed {
		upd.Status.Reason, upd.Status.Message = "", ""
	}
	out, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set volume %s phase %s: %w", pv.Name, phase, err)
	}
	return out, nil
}

// syncVolume is upstream's syncVolume: it keeps the phase in step with
// the claim the volume points to and reclaims it once that claim is gone.
func (c *Controller) syncVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.UID == "" {
		// Free, or pre-bound by the user to a claim that may not exist
		// yet: either way it waits for a claim.
		_, err := c.setVolumePhase(ctx, pv, corev1.VolumeAvailable)
		return err
	}
	pvc, err := c.claims.PersistentVolumeClaims(ref.Namespace).Get(ref.Name)
	if apierrors.IsNotFound(err) {
		// The cache may lag behind a claim just created: ask the API
		// before releasing, as upstream does.
		pvc, err = c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			pvc, err = nil, nil
		}
	}
	if err != nil {
		return err
	}
	if pvc != nil && pvc.UID != ref.UID {
		pvc = nil // a new claim of the same name: ours is gone
	}
	switch {
	case pvc == nil:
		if pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed {
			if pv, err = c.setVolumePhase(ctx, pv, corev1.VolumeReleased); err != nil {
				return err
			}
		}
		if pv.Status.Phase == corev1.VolumeReleased {
			return c.reclaim(ctx, pv)
		}
		return nil
	case pvc.Spec.VolumeName == "":
		// Binding is half done (or the user pre-bound the volume): the
		// claim's sync finishes it.
		c.claimQ.Add(pvc.Namespace + "/" + pvc.Name)
		return nil
	case pvc.Spec.VolumeName == pv.Name:
		_, err := c.setVolumePhase(ctx, pv, corev1.VolumeBound)
		return err
	default:
		// The claim went to another volume.
		if metav1.HasAnnotation(pv.ObjectMeta, volume.AnnDynamicallyProvisioned) && pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
			if pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed {
				if pv, err = c.setVolumePhase(ctx, pv, corev1.VolumeReleased); err != nil {
					return err
				}
			}
			return c.reclaim(ctx, pv)
		}
		if metav1.HasAnnotation(pv.ObjectMeta, volume.AnnBoundByController) {
			return c.unbind(ctx, pv)
		}
		return nil // the user's pre-binding stands; the claim may be unbound later
	}
}

// unbind frees a volume the controller bound to a claim that ended up on
// another volume.
func (c *Controller) unbind(ctx context.Context, pv *corev1.PersistentVolume) error {
	upd := pv.DeepCopy()
	upd.Spec.ClaimRef = nil
	delete(upd.Annotations, volume.AnnBoundByController)
	out, err := c.client.CoreV1().PersistentVolumes().Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("unbind volume %s: %w", pv.Name, err)
	}
	_, err = c.setVolumePhase(ctx, out, corev1.VolumeAvailable)
	return err
}

// reclaim applies a Released volume's reclaim policy.
func (c *Controller) reclaim(ctx context.Context, pv *corev1.PersistentVolume) error {
	switch pv.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimRecycle:
		return c.failVolume(ctx, pv, EventVolumeFailedRecycle, "No recycler plugin found for the volume!")
	case corev1.PersistentVolumeReclaimDelete:
		return c.deleteVolume(ctx, pv)
	default: // Retain: the administrator decides.
		return nil
	}
}

// deleteVolume carries out reclaim policy Delete. A volume made by an
// external provisioner is that provisioner's to delete (with its
// storage); a hand-made hostPath volume is deleted as an object (its
// directory stays: it lives on a node); others have no deleter in skiff
// and fail, as upstream's volumes without a deletable plugin.
func (c *Controller) deleteVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.DeletionTimestamp != nil {
		return nil
	}
	if p := pv.Annotations[volume.AnnDynamicallyProvisioned]; p != "" && !strings.HasPrefix(p, "kubernetes.io/") {
		return nil // the external provisioner deletes it
	}
	if pv.Spec.HostPath == nil {
		return c.failVolume(ctx, pv, EventVolumeFailedDelete, fmt.Sprintf("error getting deleter volume plugin for volume %q: no deletable volume plugin matched", pv.Name))
	}
	uid := pv.UID
	err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete released volume %s: %w", pv.Name, err)
	}
	c.recorder.Event(pv, corev1.EventTypeNormal, EventVolumeDelete, "Deleted released volume (reclaim policy Delete)")
	c.log.Info("deleted released volume", "volume", pv.Name)
	return nil
}

func (c *Controller) failVolume(ctx context.Context, pv *corev1.PersistentVolume, reason, msg string) error {
	if pv.Status.Phase == corev1.VolumeFailed {
		return nil
	}
	upd := pv.DeepCopy()
	upd.Status.Phase = corev1.VolumeFailed
	upd.Status.Reason, upd.Status.Message = reason, msg
	now := metav1.NewTime(c.clock.Now())
	upd.Status.LastPhaseTransitionTime = &now
	if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set volume %s phase Failed: %w", pv.Name, err)
	}
	c.recorder.Event(pv, corev1.EventTypeWarning, reason, msg)
	return nil
}
