// Package persistentvolume is the registry strategy for core/v1
// persistentvolumes and persistentvolumeclaims' shared access-mode rules.
package persistentvolume

import (
	"context"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// NewResource describes the persistentvolumes resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("persistentvolumes"),
		Kind:                 "PersistentVolume",
		SingularName:         "persistentvolume",
		ShortNames:           []string{"pv"},
		New:                  func() runtime.Object { return &corev1.PersistentVolume{} },
		NewList:              func() runtime.Object { return &corev1.PersistentVolumeList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Capacity", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["capacity"]},
				{Name: "Access Modes", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["accessModes"]},
				{Name: "Reclaim Policy", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["persistentVolumeReclaimPolicy"]},
				{Name: "Status", Type: "string", Description: corev1.PersistentVolumeStatus{}.SwaggerDoc()["phase"]},
				{Name: "Claim", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["claimRef"]},
				{Name: "StorageClass", Type: "string", Description: "StorageClass of the pv"},
				{Name: "VolumeAttributesClass", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["volumeAttributesClassName"]},
				{Name: "Reason", Type: "string", Description: corev1.PersistentVolumeStatus{}.SwaggerDoc()["reason"]},
				registry.AgeColumn,
				{Name: "VolumeMode", Type: "string", Priority: 1, Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["volumeMode"]},
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				pv := obj.(*corev1.PersistentVolume)
				claim := ""
				if r := pv.Spec.ClaimRef; r != nil {
					claim = r.Namespace + "/" + r.Name
				}
				storage := pv.Spec.Capacity[corev1.ResourceStorage]
				phase := string(pv.Status.Phase)
				if pv.DeletionTimestamp != nil {
					phase = "Terminating"
				}
				vac := "<unset>"
				if pv.Spec.VolumeAttributesClassName != nil {
					vac = *pv.Spec.VolumeAttributesClassName
				}
				mode := "<unset>"
				if pv.Spec.VolumeMode != nil {
					mode = string(*pv.Spec.VolumeMode)
				}
				return []interface{}{pv.Name, storage.String(), AccessModes(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy), phase, claim,
					pv.Spec.StorageClassName, vac, pv.Status.Reason, registry.Age(pv.CreationTimestamp, now), mode}
			},
		},
	}
}

// AccessModes renders access modes as kubectl does: "RWO,ROX".
func AccessModes(modes []corev1.PersistentVolumeAccessMode) string {
	short := map[corev1.PersistentVolumeAccessMode]string{corev1.ReadWriteOnce: "RWO", corev1.ReadOnlyMany: "ROX", corev1.ReadWriteMany: "RWX", corev1.ReadWriteOncePod: "RWOP"}
	var out []string
	for _, m := range modes {
		if s, ok := short[m]; ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}

// ValidAccessModes are the access modes upstream accepts.
var ValidAccessModes = []string{string(corev1.ReadOnlyMany), string(corev1.ReadWriteMany), string(corev1.ReadWriteOnce), string(corev1.ReadWriteOncePod)}

// ValidateAccessModes checks a PV's or PVC's access modes.
func ValidateAccessModes(modes []corev1.PersistentVolumeAccessMode, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(modes) == 0 {
		errs = append(errs, field.Required(path, ""))
	}
	for _, m := range modes {
		if !slices.Contains(ValidAccessModes, string(m)) {
			errs = append(errs, field.NotSupported(path, m, ValidAccessModes))
		}
	}
	if slices.Contains(modes, corev1.ReadWriteOncePod) && len(modes) > 1 {
		errs = append(errs, field.Forbidden(path, "may not use ReadWriteOncePod with other access modes"))
	}
	return errs
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	pv := obj.(*corev1.PersistentVolume)
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.Spec.VolumeMode == nil {
		fs := corev1.PersistentVolumeFilesystem
		pv.Spec.VolumeMode = &fs
	}
}

func (strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	obj.(*corev1.PersistentVolume).Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.PersistentVolume))
}

func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.PersistentVolume))
}

var reclaimPolicies = []string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRecycle), string(corev1.PersistentVolumeReclaimRetain)}

func validate(pv *corev1.PersistentVolume) field.ErrorList {
	spec := field.NewPath("spec")
	errs := ValidateAccessModes(pv.Spec.AccessModes, spec.Child("accessModes"))
	if q, ok := pv.Spec.Capacity[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(spec.Child("capacity"), "must specify storage"))
	} else if q.Sign() < 0 {
		errs = append(errs, field.Invalid(spec.Child("capacity").Key(string(corev1.ResourceStorage)), q.String(), "must be greater than or equal to 0"))
	}
	if !slices.Contains(reclaimPolicies, string(pv.Spec.PersistentVolumeReclaimPolicy)) {
		errs = append(errs, field.NotSupported(spec.Child("persistentVolumeReclaimPolicy"), pv.Spec.PersistentVolumeReclaimPolicy, reclaimPolicies))
	}
	n := sources(&pv.Spec.PersistentVolumeSource)
	if n == 0 {
		errs = append(errs, field.Required(spec, "must specify a volume type"))
	} else if n > 1 {
		errs = append(errs, field.Forbidden(spec, "may not specify more than 1 volume type"))
	}
	if pv.Spec.HostPath != nil && pv.Spec.HostPath.Path == "" {
		errs = append(errs, field.Required(spec.Child("hostPath", "path"), ""))
	}
	if pv.Spec.Local != nil && pv.Spec.NodeAffinity == nil {
		errs = append(errs, field.Required(spec.Child("nodeAffinity"), "Local volume requires node affinity"))
	}
	return errs
}

func sources(s *corev1.PersistentVolumeSource) int {
	n := 0
	for _, set := range []bool{s.GCEPersistentDisk != nil, s.AWSElasticBlockStore != nil, s.HostPath != nil, s.Glusterfs != nil, s.NFS != nil,
		s.RBD != nil, s.ISCSI != nil, s.Cinder != nil, s.CephFS != nil, s.FC != nil, s.Flocker != nil, s.FlexVolume != nil, s.AzureFile != nil,
		s.VsphereVolume != nil, s.Quobyte != nil, s.AzureDisk != nil, s.PhotonPersistentDisk != nil, s.PortworxVolume != nil, s.ScaleIO != nil,
		s.Local != nil, s.StorageOS != nil, s.CSI != nil} {
		if set {
			n++
		}
	}
	return n
}
