// Package storageclass is the registry strategy for storage.k8s.io/v1
// storageclasses.
package storageclass

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
)

// Annotations that mark the default storage class.
const (
	IsDefaultAnnotation     = "storageclass.kubernetes.io/is-default-class"
	BetaIsDefaultAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

// Limits upstream puts on provisioner parameters.
const (
	maxParameters    = 512
	maxParameterSize = 256 << 10
)

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
				if IsDefault(sc) {
					name += " (default)"
				}
				policy := ptr.Deref(sc.ReclaimPolicy, corev1.PersistentVolumeReclaimDelete)
				mode := ptr.Deref(sc.VolumeBindingMode, storagev1.VolumeBindingImmediate)
				return []interface{}{name, sc.Provisioner, string(policy), string(mode), ptr.Deref(sc.AllowVolumeExpansion, false), registry.Age(sc.CreationTimestamp, now)}
			},
		},
	}
}

// IsDefault reports whether sc is marked as the default class.
func IsDefault(sc *storagev1.StorageClass) bool {
	return sc.Annotations[IsDefaultAnnotation] == "true" || sc.Annotations[BetaIsDefaultAnnotation] == "true"
}

type strategy struct{ registry.DefaultStrategy }

// Default implements registry.Strategy: reclaim policy Delete, binding
// mode Immediate.
func (strategy) Default(obj runtime.Object) {
	sc := obj.(*storagev1.StorageClass)
	if sc.ReclaimPolicy == nil {
		sc.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimDelete)
	}
	if sc.VolumeBindingMode == nil {
		sc.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
	}
}

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*storagev1.StorageClass))
}

// ValidateUpdate implements registry.Strategy: parameters, provisioner,
// reclaim policy and binding mode are fixed at creation.
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	sc, o := obj.(*storagev1.StorageClass), old.(*storagev1.StorageClass)
	var errs field.ErrorList
	if !apiequality.Semantic.DeepEqual(sc.Parameters, o.Parameters) {
		errs = append(errs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
	}
	if sc.Provisioner != o.Provisioner {
		errs = append(errs, field.Forbidden(field.NewPath("provisioner"), "updates to provisioner are forbidden."))
	}
	if !apiequality.Semantic.DeepEqual(sc.ReclaimPolicy, o.ReclaimPolicy) {
		errs = append(errs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
	}
	errs = append(errs, apivalidation.ValidateImmutableField(sc.VolumeBindingMode, o.VolumeBindingMode, field.NewPath("volumeBindingMode"))...)
	return append(errs, Validate(sc)...)
}

var (
	reclaimPolicies = sets.New(corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain)
	bindingModes    = sets.New(storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer)
)

// Validate checks a storage class as upstream's ValidateStorageClass does.
func Validate(sc *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	prov := field.NewPath("provisioner")
	if sc.Provisioner == "" {
		errs = append(errs, field.Required(prov, ""))
	} else {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(sc.Provisioner)) {
			errs = append(errs, field.Invalid(prov, sc.Provisioner, msg))
		}
	}
	params := field.NewPath("parameters")
	if len(sc.Parameters) > maxParameters {
		errs = append(errs, field.TooLong(params, "Provisioner Parameters exceeded max allowed", maxParameters))
	} else {
		size := 0
		for k, v := range sc.Parameters {
			if k == "" {
				errs = append(errs, field.Invalid(params, k, "field can not be empty."))
			}
			size += len(k) + len(v)
		}
		if size > maxParameterSize {
			errs = append(errs, field.TooLong(params, "", maxParameterSize))
		}
	}
	if p := sc.ReclaimPolicy; p != nil && *p != "" && !reclaimPolicies.Has(*p) {
		errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), *p, sets.List(reclaimPolicies)))
	}
	if m := sc.VolumeBindingMode; m == nil {
		errs = append(errs, field.Required(field.NewPath("volumeBindingMode"), ""))
	} else if !bindingModes.Has(*m) {
		errs = append(errs, field.NotSupported(field.NewPath("volumeBindingMode"), *m, sets.List(bindingModes)))
	}
	return errs
}
