// Package persistentvolumeclaim is the registry strategy for core/v1
// persistentvolumeclaims.
package persistentvolumeclaim

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/persistentvolume"
)

// NewResource describes the persistentvolumeclaims resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims"),
		Kind:                 "PersistentVolumeClaim",
		SingularName:         "persistentvolumeclaim",
		ShortNames:           []string{"pvc"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.PersistentVolumeClaim{} },
		NewList:              func() runtime.Object { return &corev1.PersistentVolumeClaimList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Status", Type: "string", Description: corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()["phase"]},
				{Name: "Volume", Type: "string", Description: corev1.PersistentVolumeClaimSpec{}.SwaggerDoc()["volumeName"]},
				{Name: "Capacity", Type: "string", Description: corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()["capacity"]},
				{Name: "Access Modes", Type: "string", Description: corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()["accessModes"]},
				{Name: "StorageClass", Type: "string", Description: "StorageClass of the pvc"},
				{Name: "VolumeAttributesClass", Type: "string", Description: "VolumeAttributesClass of the pvc"},
				registry.AgeColumn,
				{Name: "VolumeMode", Type: "string", Priority: 1, Description: corev1.PersistentVolumeClaimSpec{}.SwaggerDoc()["volumeMode"]},
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				c := obj.(*corev1.PersistentVolumeClaim)
				phase := string(c.Status.Phase)
				if c.DeletionTimestamp != nil {
					phase = "Terminating"
				}
				capacity, modes := "", ""
				if c.Spec.VolumeName != "" {
					q := c.Status.Capacity[corev1.ResourceStorage]
					capacity, modes = q.String(), persistentvolume.AccessModes(c.Status.AccessModes)
				}
				return []interface{}{c.Name, phase, c.Spec.VolumeName, capacity, modes, StorageClass(c), persistentvolume.Unset(c.Spec.VolumeAttributesClassName),
					registry.Age(c.CreationTimestamp, now), persistentvolume.Unset((*string)(c.Spec.VolumeMode))}
			},
		},
	}
}

// StorageClass is the claim's class: the beta annotation if set (it still
// wins), else storageClassName, else "".
func StorageClass(c *corev1.PersistentVolumeClaim) string {
	if class, ok := c.Annotations[persistentvolume.BetaStorageClassAnnotation]; ok {
		return class
	}
	return ptr.Deref(c.Spec.StorageClassName, "")
}

type strategy struct{ registry.DefaultStrategy }

// Default implements registry.Strategy.
func (strategy) Default(obj runtime.Object) {
	c := obj.(*corev1.PersistentVolumeClaim)
	if c.Spec.VolumeMode == nil {
		c.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
	}
}

// PrepareForCreate implements registry.Strategy: a new claim is Pending.
func (strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*corev1.PersistentVolumeClaim).Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
}

// PrepareForUpdate implements registry.Strategy: status changes only
// through persistentvolumeclaims/status.
func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	registry.KeepStatus(obj, old)
}

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.PersistentVolumeClaim))
}

// ValidateUpdate implements registry.Strategy.
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateUpdate(obj.(*corev1.PersistentVolumeClaim), old.(*corev1.PersistentVolumeClaim))
}

// Validate checks a claim's spec as upstream's
// ValidatePersistentVolumeClaimSpec does.
func Validate(c *corev1.PersistentVolumeClaim) field.ErrorList {
	spec := field.NewPath("spec")
	s := &c.Spec
	errs := persistentvolume.ValidateAccessModes(s.AccessModes, "at least 1 access mode is required", spec.Child("accessModes"))
	if s.Selector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, spec.Child("selector"))...)
	}
	// Upstream reports the storage request at spec.resources[storage].
	storagePath := spec.Child("resources").Key(string(corev1.ResourceStorage))
	if q, ok := s.Resources.Requests[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(storagePath, ""))
	} else {
		errs = append(errs, persistentvolume.PositiveQuantity(q, storagePath)...)
	}
	if s.StorageClassName != nil && *s.StorageClassName != "" {
		errs = append(errs, persistentvolume.ValidateClassName(*s.StorageClassName, spec.Child("storageClassName"))...)
	}
	if s.VolumeMode != nil && !persistentvolume.VolumeModes.Has(*s.VolumeMode) {
		errs = append(errs, field.NotSupported(spec.Child("volumeMode"), *s.VolumeMode, sets.List(persistentvolume.VolumeModes)))
	}
	if s.VolumeAttributesClassName != nil && *s.VolumeAttributesClassName != "" {
		errs = append(errs, persistentvolume.ValidateClassName(*s.VolumeAttributesClassName, spec.Child("volumeAttributesClassName"))...)
	}
	return errs
}

// ValidateUpdate keeps the spec immutable after creation except that the
// binder may set volumeName once and bound claims may change their
// storage request (not below their capacity) and volume attributes class,
// as upstream does.
func ValidateUpdate(c, old *corev1.PersistentVolumeClaim) field.ErrorList {
	errs := Validate(c)
	newSpec, oldSpec := c.Spec.DeepCopy(), old.Spec.DeepCopy()
	if old.Spec.VolumeName == "" {
		oldSpec.VolumeName = newSpec.VolumeName
	}
	// Setting storageClassName on a claim that had none is allowed once.
	if oldSpec.StorageClassName == nil && newSpec.StorageClassName != nil {
		if class, ok := old.Annotations[persistentvolume.BetaStorageClassAnnotation]; !ok || class == *newSpec.StorageClassName {
			oldSpec.StorageClassName = newSpec.StorageClassName
		}
	}
	beta := persistentvolume.BetaStorageClassAnnotation
	if c.Annotations[beta] != old.Annotations[beta] {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "annotations", beta), c.Annotations[beta], "field is immutable"))
	}
	if c.Status.Phase == corev1.ClaimBound {
		if newSpec.Resources.Requests != nil {
			newSpec.Resources.Requests[corev1.ResourceStorage] = old.Spec.Resources.Requests[corev1.ResourceStorage]
		}
		if newSpec.VolumeAttributesClassName != nil {
			newSpec.VolumeAttributesClassName = oldSpec.VolumeAttributesClassName
		}
	}
	if !apiequality.Semantic.DeepEqual(newSpec, oldSpec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"))
	}
	newSize, oldSize := c.Spec.Resources.Requests[corev1.ResourceStorage], old.Spec.Resources.Requests[corev1.ResourceStorage]
	if capacity := old.Status.Capacity[corev1.ResourceStorage]; newSize.Cmp(oldSize) < 0 && newSize.Cmp(capacity) <= 0 {
		// Shrinking is only allowed back towards what a failed expansion
		// left in status.
		errs = append(errs, field.Forbidden(field.NewPath("spec", "resources", "requests", "storage"), "field can not be less than status.capacity"))
	}
	errs = append(errs, apivalidation.ValidateImmutableField(c.Spec.VolumeMode, old.Spec.VolumeMode, field.NewPath("volumeMode"))...)
	if old.Spec.VolumeAttributesClassName != nil && c.Spec.VolumeAttributesClassName == nil {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "volumeAttributesClassName"), "update from non-nil value to nil is forbidden"))
	}
	return errs
}
