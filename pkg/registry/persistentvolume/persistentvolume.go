// Package persistentvolume is the registry strategy for core/v1
// persistentvolumes, and holds what volumes and claims share: access mode
// rules and their rendering.
package persistentvolume

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
)

// BetaStorageClassAnnotation is the storage class annotation that predates
// storageClassName and still wins over it when printing.
const BetaStorageClassAnnotation = corev1.BetaStorageClassAnnotation

// NewResource describes the persistentvolumes resource; clk stamps phase
// transitions.
func NewResource(clk clock.PassiveClock) *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("persistentvolumes"),
		Kind:                 "PersistentVolume",
		SingularName:         "persistentvolume",
		ShortNames:           []string{"pv"},
		New:                  func() runtime.Object { return &corev1.PersistentVolume{} },
		NewList:              func() runtime.Object { return &corev1.PersistentVolumeList{} },
		Strategy:             strategy{clock: clk},
		Status:               statusStrategy{clock: clk},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Capacity", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["capacity"]},
				{Name: "Access Modes", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["accessModes"]},
				{Name: "Reclaim Policy", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["persistentVolumeReclaimPolicy"]},
				{Name: "Status", Type: "string", Description: corev1.PersistentVolumeStatus{}.SwaggerDoc()["phase"]},
				{Name: "Claim", Type: "string", Description: corev1.PersistentVolumeSpec{}.SwaggerDoc()["claimRef"]},
				{Name: "StorageClass", Type: "string", Description: "StorageClass of the pv"},
				{Name: "VolumeAttributesClass", Type: "string", Description: "VolumeAttributesClass of the pv"},
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
				capacity := pv.Spec.Capacity[corev1.ResourceStorage]
				phase := string(pv.Status.Phase)
				if pv.DeletionTimestamp != nil {
					phase = "Terminating"
				}
				class := pv.Spec.StorageClassName
				if c, ok := pv.Annotations[BetaStorageClassAnnotation]; ok {
					class = c
				}
				return []interface{}{pv.Name, capacity.String(), AccessModes(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy), phase, claim,
					class, Unset(pv.Spec.VolumeAttributesClassName), pv.Status.Reason, registry.Age(pv.CreationTimestamp, now), Unset((*string)(pv.Spec.VolumeMode))}
			},
		},
	}
}

// Unset renders an optional string, "<unset>" when nil.
func Unset(s *string) string {
	return ptr.Deref(s, "<unset>")
}

// AccessModes renders access modes as kubectl shows them, in a fixed
// order: "RWO,ROX,RWX,RWOP".
func AccessModes(modes []corev1.PersistentVolumeAccessMode) string {
	have := sets.New(modes...)
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{{corev1.ReadWriteOnce, "RWO"}, {corev1.ReadOnlyMany, "ROX"}, {corev1.ReadWriteMany, "RWX"}, {corev1.ReadWriteOncePod, "RWOP"}} {
		if have.Has(m.mode) {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}

var (
	accessModes     = sets.New(corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod)
	reclaimPolicies = sets.New(corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain)
	// VolumeModes are the supported volume modes.
	VolumeModes = sets.New(corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem)
)

// ValidateAccessModes checks the access modes of a volume or claim;
// required says the message of an empty list.
func ValidateAccessModes(modes []corev1.PersistentVolumeAccessMode, required string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(modes) == 0 {
		errs = append(errs, field.Required(path, required))
	}
	oncePod, others := false, false
	for _, m := range modes {
		if !accessModes.Has(m) {
			errs = append(errs, field.NotSupported(path, m, sets.List(accessModes)))
		} else if m == corev1.ReadWriteOncePod {
			oncePod = true
		} else {
			others = true
		}
	}
	if oncePod && others {
		errs = append(errs, field.Forbidden(path, "may not use ReadWriteOncePod with other access modes"))
	}
	return errs
}

// ValidateClassName checks a storage or volume attributes class name.
func ValidateClassName(name string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range apivalidation.NameIsDNSSubdomain(name, false) {
		errs = append(errs, field.Invalid(path, name, msg))
	}
	return errs
}

type strategy struct {
	registry.DefaultStrategy
	clock clock.PassiveClock
}

// Default implements registry.Strategy.
func (strategy) Default(obj runtime.Object) {
	pv := obj.(*corev1.PersistentVolume)
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.Spec.VolumeMode == nil {
		pv.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
	}
}

// PrepareForCreate implements registry.Strategy: a new volume is Pending
// since now.
func (s strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	now := metav1.NewTime(s.clock.Now().Truncate(time.Second))
	obj.(*corev1.PersistentVolume).Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending, LastPhaseTransitionTime: &now}
}

// PrepareForUpdate implements registry.Strategy: status changes only
// through persistentvolumes/status.
func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	registry.KeepStatus(obj, old)
}

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.PersistentVolume))
}

// ValidateUpdate implements registry.Strategy: the volume source and mode
// are immutable, and node affinity once set.
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	pv, o := obj.(*corev1.PersistentVolume), old.(*corev1.PersistentVolume)
	errs := Validate(pv)
	if !apiequality.Semantic.DeepEqual(pv.Spec.PersistentVolumeSource, o.Spec.PersistentVolumeSource) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "persistentvolumesource"), "spec.persistentvolumesource is immutable after creation"))
	}
	errs = append(errs, apivalidation.ValidateImmutableField(pv.Spec.VolumeMode, o.Spec.VolumeMode, field.NewPath("volumeMode"))...)
	if o.Spec.NodeAffinity != nil {
		errs = append(errs, apivalidation.ValidateImmutableField(pv.Spec.NodeAffinity, o.Spec.NodeAffinity, field.NewPath("nodeAffinity"))...)
	}
	return errs
}

// statusStrategy stamps lastPhaseTransitionTime when the phase changes and
// the client did not set it.
type statusStrategy struct{ clock clock.PassiveClock }

// PrepareForUpdate implements registry.StatusStrategy.
func (s statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	registry.KeepAllButStatus(obj, old)
	st, o := &obj.(*corev1.PersistentVolume).Status, &old.(*corev1.PersistentVolume).Status
	switch {
	case st.Phase == o.Phase && st.LastPhaseTransitionTime == nil:
		st.LastPhaseTransitionTime = o.LastPhaseTransitionTime
	case st.Phase != o.Phase && (st.LastPhaseTransitionTime == nil || st.LastPhaseTransitionTime.Equal(o.LastPhaseTransitionTime)):
		now := metav1.NewTime(s.clock.Now().Truncate(time.Second))
		st.LastPhaseTransitionTime = &now
	}
}

// ValidateUpdate implements registry.StatusStrategy.
func (statusStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}

// Validate checks a volume as upstream's ValidatePersistentVolumeSpec does
// for the parts skiff uses: access modes, capacity, reclaim policy, exactly
// one volume source (and the fields of the common ones), class and mode.
func Validate(pv *corev1.PersistentVolume) field.ErrorList {
	spec := field.NewPath("spec")
	s := &pv.Spec
	errs := ValidateAccessModes(s.AccessModes, "", spec.Child("accessModes"))
	capPath := spec.Child("capacity")
	if len(s.Capacity) == 0 {
		errs = append(errs, field.Required(capPath, ""))
	}
	if _, ok := s.Capacity[corev1.ResourceStorage]; !ok || len(s.Capacity) > 1 {
		errs = append(errs, field.NotSupported(capPath, s.Capacity, []corev1.ResourceName{corev1.ResourceStorage}))
	}
	for r, q := range s.Capacity {
		errs = append(errs, PositiveQuantity(q, capPath.Key(string(r)))...)
	}
	if s.PersistentVolumeReclaimPolicy != "" && !reclaimPolicies.Has(s.PersistentVolumeReclaimPolicy) {
		errs = append(errs, field.NotSupported(spec.Child("persistentVolumeReclaimPolicy"), s.PersistentVolumeReclaimPolicy, sets.List(reclaimPolicies)))
	}
	errs = append(errs, validateSource(s, spec)...)
	if s.HostPath != nil && filepath.Clean(s.HostPath.Path) == "/" && s.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRecycle {
		errs = append(errs, field.Forbidden(spec.Child("persistentVolumeReclaimPolicy"), "may not be 'recycle' for a hostPath mount of '/'"))
	}
	if s.StorageClassName != "" {
		errs = append(errs, ValidateClassName(s.StorageClassName, spec.Child("storageClassName"))...)
	}
	if s.VolumeMode != nil && !VolumeModes.Has(*s.VolumeMode) {
		errs = append(errs, field.NotSupported(spec.Child("volumeMode"), *s.VolumeMode, sets.List(VolumeModes)))
	}
	return errs
}

// PositiveQuantity checks that q is above zero.
func PositiveQuantity(q resource.Quantity, path *field.Path) field.ErrorList {
	if q.Cmp(resource.Quantity{}) <= 0 {
		return field.ErrorList{field.Invalid(path, q.String(), "must be greater than zero")}
	}
	return nil
}

// validateSource counts the volume sources in upstream's order (a second
// one is Forbidden at its own path) and checks the common ones.
func validateSource(s *corev1.PersistentVolumeSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	for _, src := range []struct {
		name string
		set  bool
	}{
		{"hostPath", s.HostPath != nil}, {"gcePersistentDisk", s.GCEPersistentDisk != nil}, {"awsElasticBlockStore", s.AWSElasticBlockStore != nil},
		{"glusterfs", s.Glusterfs != nil}, {"flocker", s.Flocker != nil}, {"nfs", s.NFS != nil}, {"rbd", s.RBD != nil}, {"quobyte", s.Quobyte != nil},
		{"cephFS", s.CephFS != nil}, {"iscsi", s.ISCSI != nil}, {"cinder", s.Cinder != nil}, {"fc", s.FC != nil}, {"flexVolume", s.FlexVolume != nil},
		{"azureFile", s.AzureFile != nil}, {"vsphereVolume", s.VsphereVolume != nil}, {"photonPersistentDisk", s.PhotonPersistentDisk != nil},
		{"portworxVolume", s.PortworxVolume != nil}, {"azureDisk", s.AzureDisk != nil}, {"scaleIO", s.ScaleIO != nil}, {"local", s.Local != nil},
		{"storageos", s.StorageOS != nil}, {"csi", s.CSI != nil},
	} {
		if !src.set {
			continue
		}
		if n > 0 && src.name != "flexVolume" {
			errs = append(errs, field.Forbidden(spec.Child(src.name), "may not specify more than 1 volume type"))
			continue
		}
		n++
	}
	if n == 0 {
		errs = append(errs, field.Required(spec, "must specify a volume type"))
	}
	if s.HostPath != nil {
		errs = append(errs, validatePath(s.HostPath.Path, spec.Child("hostPath", "path"))...)
	}
	if s.Local != nil {
		errs = append(errs, validatePath(s.Local.Path, spec.Child("local", "path"))...)
		if s.NodeAffinity == nil || s.NodeAffinity.Required == nil {
			errs = append(errs, field.Required(spec.Child("nodeAffinity"), "Local volume requires node affinity"))
		}
	}
	if s.NFS != nil {
		if s.NFS.Server == "" {
			errs = append(errs, field.Required(spec.Child("nfs", "server"), ""))
		}
		if s.NFS.Path == "" {
			errs = append(errs, field.Required(spec.Child("nfs", "path"), ""))
		} else if !filepath.IsAbs(s.NFS.Path) {
			errs = append(errs, field.Invalid(spec.Child("nfs", "path"), s.NFS.Path, "must be an absolute path"))
		}
	}
	if s.CSI != nil {
		if s.CSI.Driver == "" {
			errs = append(errs, field.Required(spec.Child("csi", "driver"), ""))
		}
		if s.CSI.VolumeHandle == "" {
			errs = append(errs, field.Required(spec.Child("csi", "volumeHandle"), ""))
		}
	}
	return errs
}

func validatePath(p string, path *field.Path) field.ErrorList {
	if p == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(path, p, "must not contain '..'")}
		}
	}
	return nil
}
