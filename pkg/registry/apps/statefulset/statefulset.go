// Package statefulset is the registry strategy for apps/v1 statefulsets.
package statefulset

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// NewResource describes the statefulsets resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: appsv1.SchemeGroupVersion.WithResource("statefulsets"),
		Kind:                 "StatefulSet",
		SingularName:         "statefulset",
		ShortNames:           []string{"sts"},
		Categories:           []string{"all"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &appsv1.StatefulSet{} },
		NewList:              func() runtime.Object { return &appsv1.StatefulSetList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Scale: &registry.ScaleSubresource{
			Get: func(obj runtime.Object) (int32, int32, string) {
				s := obj.(*appsv1.StatefulSet)
				return ptr.Deref(s.Spec.Replicas, 0), s.Status.Replicas, pod.SelectorString(s.Spec.Selector)
			},
			SetReplicas: func(obj runtime.Object, n int32) { obj.(*appsv1.StatefulSet).Spec.Replicas = &n },
		},
		Table: &registry.TableColumns{
			Columns: append([]metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
				registry.AgeColumn,
			}, pod.TemplateColumnDefinitions("")...),
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				s := obj.(*appsv1.StatefulSet)
				containers, images := pod.TemplateColumns(&s.Spec.Template)
				return []interface{}{s.Name, fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, ptr.Deref(s.Spec.Replicas, 0)), registry.Age(s.CreationTimestamp, now), containers, images}
			},
		},
	}
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	s := &obj.(*appsv1.StatefulSet).Spec
	if s.Replicas == nil {
		one := int32(1)
		s.Replicas = &one
	}
	if s.PodManagementPolicy == "" {
		s.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		if s.UpdateStrategy.RollingUpdate.Partition == nil {
			zero := int32(0)
			s.UpdateStrategy.RollingUpdate.Partition = &zero
		}
	}
	if s.RevisionHistoryLimit == nil {
		ten := int32(10)
		s.RevisionHistoryLimit = &ten
	}
	if s.PersistentVolumeClaimRetentionPolicy == nil {
		s.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		}
	}
	for i := range s.VolumeClaimTemplates {
		if s.VolumeClaimTemplates[i].Spec.VolumeMode == nil {
			fs := corev1.PersistentVolumeFilesystem
			s.VolumeClaimTemplates[i].Spec.VolumeMode = &fs
		}
	}
	pod.DefaultPodSpec(&s.Template.Spec)
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*appsv1.StatefulSet))
}

// ValidateUpdate allows changes only to replicas, ordinals, template,
// updateStrategy, persistentVolumeClaimRetentionPolicy and minReadySeconds,
// as upstream does.
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	s, o := obj.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet)
	errs := validate(s)
	rest := o.Spec.DeepCopy()
	rest.Replicas, rest.Ordinals, rest.Template, rest.UpdateStrategy = s.Spec.Replicas, s.Spec.Ordinals, s.Spec.Template, s.Spec.UpdateStrategy
	rest.PersistentVolumeClaimRetentionPolicy, rest.MinReadySeconds, rest.RevisionHistoryLimit = s.Spec.PersistentVolumeClaimRetentionPolicy, s.Spec.MinReadySeconds, s.Spec.RevisionHistoryLimit
	if !apiequality.Semantic.DeepEqual(rest, &s.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
	}
	return errs
}

// withClaimVolumes is the set's template with a volume for each claim
// template the pods mount, as the controller makes them.
func withClaimVolumes(s *appsv1.StatefulSet) *corev1.PodTemplateSpec {
	t := s.Spec.Template.DeepCopy()
	for _, c := range s.Spec.VolumeClaimTemplates {
		if !slices.ContainsFunc(t.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.Name }) {
			t.Spec.Volumes = append(t.Spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name},
			}})
		}
	}
	return t
}

func validate(s *appsv1.StatefulSet) field.ErrorList {
	spec := field.NewPath("spec")
	errs := pod.ValidateReplicas(s.Spec.Replicas, spec.Child("replicas"))
	errs = append(errs, pod.ValidateSelectedTemplate(s.Spec.Selector, withClaimVolumes(s), spec)...)
	if p := s.Spec.Template.Spec.RestartPolicy; p != "" && p != "Always" {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), p, []string{"Always"}))
	}
	switch s.Spec.PodManagementPolicy {
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.NotSupported(spec.Child("podManagementPolicy"), s.Spec.PodManagementPolicy, []string{string(appsv1.OrderedReadyPodManagement), string(appsv1.ParallelPodManagement)}))
	}
	switch s.Spec.UpdateStrategy.Type {
	case appsv1.OnDeleteStatefulSetStrategyType:
		if s.Spec.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(spec.Child("updateStrategy", "rollingUpdate"), "", "only allowed for updateStrategy 'RollingUpdate'"))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition < 0 {
			errs = append(errs, field.Invalid(spec.Child("updateStrategy", "rollingUpdate", "partition"), *ru.Partition, "must be greater than or equal to 0"))
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("updateStrategy", "type"), s.Spec.UpdateStrategy.Type, []string{string(appsv1.OnDeleteStatefulSetStrategyType), string(appsv1.RollingUpdateStatefulSetStrategyType)}))
	}
	return errs
}
