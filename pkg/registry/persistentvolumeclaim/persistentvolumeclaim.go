// Package persistentvolumeclaim is the registry strategy for core/v1
// persistentvolumeclaims.
package persistentvolumeclaim

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

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
				{Name: "VolumeAttributesClass", Type: "string", Description: corev1.PersistentVolumeClaimSpec{}.SwaggerDoc()["volumeAttributesClassName"]},
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
				class := "<unset>"
				if c.Spec.StorageClassName != nil {
					class = *c.Spec.StorageClassName
				}
				vac := "<unset>"
				if c.Spec.VolumeAttributesClassName != nil {
					vac = *c.Spec.VolumeAttributesClassName
				}
				mode := "<unset>"
				if c.Spec.VolumeMode != nil {
					mode = string(*c.Spec.VolumeMode)
				}
				return []interface{}{c.Name, phase, c.Spec.VolumeName, capacity, modes, class, vac, registry.Age(c.CreationTimestamp, now), mode}
			},
		},
	}
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	c := obj.(*corev1.PersistentVolumeClaim)
	if c.Spec.VolumeMode == nil {
		fs := corev1.PersistentVolumeFilesystem
		c.Spec.VolumeMode = &fs
	}
}

func (strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*corev1.PersistentVolumeClaim).Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.PersistentVolumeClaim))
}

// ValidateUpdate keeps the spec immutable except for growing the storage
// request and binding to a volume, as upstream does.
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	c, o := obj.(*corev1.PersistentVolumeClaim), old.(*corev1.PersistentVolumeClaim)
	errs := validate(c)
	spec := o.Spec.DeepCopy()
	spec.Resources.Requests = c.Spec.Resources.Requests
	if o.Spec.VolumeName == "" {
		spec.VolumeName = c.Spec.VolumeName
	}
	spec.VolumeAttributesClassName = c.Spec.VolumeAttributesClassName
	if !apiequality.Semantic.DeepEqual(spec, &c.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"))
	}
	newReq, oldReq := c.Spec.Resources.Requests[corev1.ResourceStorage], o.Spec.Resources.Requests[corev1.ResourceStorage]
	if newReq.Cmp(oldReq) < 0 && c.Status.Phase == corev1.ClaimBound {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "resources", "requests", "storage"), "field can not be less than status.capacity"))
	}
	return errs
}

func validate(c *corev1.PersistentVolumeClaim) field.ErrorList {
	spec := field.NewPath("spec")
	errs := persistentvolume.ValidateAccessModes(c.Spec.AccessModes, spec.Child("accessModes"))
	if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(spec.Child("resources", "requests").Key(string(corev1.ResourceStorage)), ""))
	} else if q.Sign() <= 0 {
		errs = append(errs, field.Invalid(spec.Child("resources", "requests").Key(string(corev1.ResourceStorage)), q.String(), "must be greater than zero"))
	}
	return errs
}
