package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/storage/volume"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/storageclass"
)

// Protection finalizers, as upstream's.
const (
	PVCProtectionFinalizer = "kubernetes.io/pvc-protection"
	PVProtectionFinalizer  = "kubernetes.io/pv-protection"
)

// StorageObjectInUseProtection adds the protection finalizer to every
// PersistentVolumeClaim and PersistentVolume created, so the protection
// controllers decide when they may go, as upstream's plugin.
type StorageObjectInUseProtection struct{}

var _ registry.Mutator = StorageObjectInUseProtection{}

// Mutates implements registry.Mutator.
func (StorageObjectInUseProtection) Mutates() {}

// Admit implements registry.Admitter.
func (StorageObjectInUseProtection) Admit(_ context.Context, a *registry.Attributes) error {
	if a.Operation != registry.Create || a.Subresource != "" {
		return nil
	}
	switch o := a.Object.(type) {
	case *corev1.PersistentVolumeClaim:
		if !slices.Contains(o.Finalizers, PVCProtectionFinalizer) {
			o.Finalizers = append(o.Finalizers, PVCProtectionFinalizer)
		}
	case *corev1.PersistentVolume:
		if !slices.Contains(o.Finalizers, PVProtectionFinalizer) {
			o.Finalizers = append(o.Finalizers, PVProtectionFinalizer)
		}
	}
	return nil
}

// DefaultStorageClass gives a claim created without a storageClassName
// the default StorageClass (the newest if several are marked), as
// upstream's plugin does since 1.28.
type DefaultStorageClass struct {
	// StorageClasses returns the storageclasses store (nil until it exists).
	StorageClasses func() *registry.Store
}

var _ registry.Mutator = DefaultStorageClass{}

// Mutates implements registry.Mutator.
func (DefaultStorageClass) Mutates() {}

// Admit implements registry.Admitter.
func (d DefaultStorageClass) Admit(ctx context.Context, a *registry.Attributes) error {
	pvc, ok := a.Object.(*corev1.PersistentVolumeClaim)
	if !ok || a.Operation != registry.Create || a.Subresource != "" || volume.PersistentVolumeClaimHasClass(pvc) {
		return nil
	}
	store := d.StorageClasses()
	if store == nil {
		return nil
	}
	list, err := store.List(ctx, "", &metav1.ListOptions{})
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("listing storage classes: %w", err))
	}
	class := defaultClass(list.(*storagev1.StorageClassList).Items)
	if class != nil {
		pvc.Spec.StorageClassName = &class.Name
	}
	return nil
}

// defaultClass is the newest class marked default (by name on a tie), or
// nil.
func defaultClass(classes []storagev1.StorageClass) *storagev1.StorageClass {
	var defaults []*storagev1.StorageClass
	for i := range classes {
		c := &classes[i]
		if c.Annotations[storageclass.IsDefaultAnnotation] == "true" || c.Annotations[storageclass.BetaIsDefaultAnnotation] == "true" {
			defaults = append(defaults, c)
		}
	}
	if len(defaults) == 0 {
		return nil
	}
	sort.Slice(defaults, func(i, j int) bool {
		ti, tj := defaults[i].CreationTimestamp.UnixNano(), defaults[j].CreationTimestamp.UnixNano()
		if ti == tj {
			return defaults[i].Name < defaults[j].Name
		}
		return ti > tj
	})
	return defaults[0]
}

// PersistentVolumeClaimResize forbids growing a claim unless its
// StorageClass allows volume expansion, as upstream's plugin.
type PersistentVolumeClaimResize struct {
	// StorageClasses returns the storageclasses store (nil until it exists).
	StorageClasses func() *registry.Store
}

var _ registry.Admitter = PersistentVolumeClaimResize{}

// errResizeForbidden is upstream's message.
var errResizeForbidden = errors.New("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize")

// Admit implements registry.Admitter.
func (r PersistentVolumeClaimResize) Admit(ctx context.Context, a *registry.Attributes) error {
	if a.Operation != registry.Update || a.Subresource != "" {
		return nil
	}
	pvc, ok1 := a.Object.(*corev1.PersistentVolumeClaim)
	old, ok2 := a.OldObject.(*corev1.PersistentVolumeClaim)
	if !ok1 || !ok2 {
		return nil
	}
	want, had := pvc.Spec.Resources.Requests[corev1.ResourceStorage], old.Spec.Resources.Requests[corev1.ResourceStorage]
	if want.Cmp(had) <= 0 {
		return nil
	}
	forbidden := apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, errResizeForbidden)
	className := volume.GetPersistentVolumeClaimClass(old)
	store := r.StorageClasses()
	if className == "" || store == nil {
		return forbidden
	}
	obj, err := store.Get(ctx, "", className, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return forbidden
	}
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("getting storage class %s: %w", className, err))
	}
	if class := obj.(*storagev1.StorageClass); class.AllowVolumeExpansion == nil || !*class.AllowVolumeExpansion {
		return forbidden
	}
	return nil
}
