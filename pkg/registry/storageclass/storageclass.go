// Package storageclass is the registry strategy for storage.k8s.io/v1
// storageclasses.
package storageclass

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// IsDefaultAnnotation marks the default storage class.
const IsDefaultAnnotation = "storageclass.kubernetes.io/is-default-class"

// NewResource describes the storageclasses resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: storagev1.SchemeGroupVersion.WithResource("storageclasses"),
		Kind:                 "StorageClass",
		SingularName:         "storageclass",
		ShortNames:           []string{"sc"},
		New:                  func() runtime.Object { return &storagev1.StorageClass{} },
		NewList:              func() runtime.Object { return &storagev1.StorageClassList{} },
		Strategy:             strategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Provisioner", Type: "string", Description: storagev1.StorageClass{}.SwaggerDoc()["provisioner"]},
				{Name: "ReclaimPolicy", Type: "string", Description: storagev1.StorageClass{}.SwaggerDoc()["reclaimPolicy"]},
				{Name: "VolumeBindingMode", Type: "string", Description: storagev1.StorageClass{}.SwaggerDoc()["volumeBindingMode"]},
				{Name: "AllowVolumeExpansion", Type: "string", Description: storagev1.StorageClass{}.SwaggerDoc()["allowVolumeExpansion"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				sc := obj.(*storagev1.StorageClass)
				name := sc.Name
				if sc.Annotations[IsDefaultAnnotation] == "true" {
					name += " (default)"
				}
				policy, mode := "Delete", "Immediate"
				if sc.ReclaimPolicy != nil {
					policy = string(*sc.ReclaimPolicy)
				}
				if sc.VolumeBindingMode != nil {
					mode = string(*sc.VolumeBindingMode)
				}
				expand := sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
				return []interface{}{name, sc.Provisioner, policy, mode, expand, registry.Age(sc.CreationTimestamp, now)}
			},
		},
	}
}

type strategy struct{ registry.DefaultStrategy }

func (strategy) Default(obj runtime.Object) {
	sc := obj.(*storagev1.StorageClass)
	if sc.ReclaimPolicy == nil {
		d := corev1.PersistentVolumeReclaimDelete
		sc.ReclaimPolicy = &d
	}
	if sc.VolumeBindingMode == nil {
		m := storagev1.VolumeBindingImmediate
		sc.VolumeBindingMode = &m
	}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*storagev1.StorageClass))
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	sc, o := obj.(*storagev1.StorageClass), old.(*storagev1.StorageClass)
	errs := validate(sc)
	errs = append(errs, registry.Immutable(sc.Provisioner != o.Provisioner, field.NewPath("provisioner"))...)
	errs = append(errs, registry.Immutable(!apiequality.Semantic.DeepEqual(sc.Parameters, o.Parameters), field.NewPath("parameters"))...)
	errs = append(errs, registry.Immutable(!apiequality.Semantic.DeepEqual(sc.ReclaimPolicy, o.ReclaimPolicy), field.NewPath("reclaimPolicy"))...)
	errs = append(errs, registry.Immutable(!apiequality.Semantic.DeepEqual(sc.VolumeBindingMode, o.VolumeBindingMode), field.NewPath("volumeBindingMode"))...)
	return errs
}

var (
	reclaimPolicies = []string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRetain)}
	bindingModes    = []string{string(storagev1.VolumeBindingImmediate), string(storagev1.VolumeBindingWaitForFirstConsumer)}
)

func validate(sc *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	if sc.Provisioner == "" {
		errs = append(errs, field.Required(field.NewPath("provisioner"), ""))
	} else {
		for _, msg := range validation.IsQualifiedName(sc.Provisioner) {
			errs = append(errs, field.Invalid(field.NewPath("provisioner"), sc.Provisioner, msg))
		}
	}
	if p := sc.ReclaimPolicy; p != nil && !slices.Contains(reclaimPolicies, string(*p)) {
		errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), *p, reclaimPolicies))
	}
	if m := sc.VolumeBindingMode; m != nil && !slices.Contains(bindingModes, string(*m)) {
		errs = append(errs, field.NotSupported(field.NewPath("volumeBindingMode"), *m, bindingModes))
	}
	return errs
}
