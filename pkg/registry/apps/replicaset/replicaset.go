// Package replicaset is the registry strategy for apps/v1 replicasets.
package replicaset

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// NewResource describes the replicasets resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: appsv1.SchemeGroupVersion.WithResource("replicasets"),
		Kind:                 "ReplicaSet",
		SingularName:         "replicaset",
		ShortNames:           []string{"rs"},
		Categories:           []string{"all"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &appsv1.ReplicaSet{} },
		NewList:              func() runtime.Object { return &appsv1.ReplicaSetList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.replicas": fmt.Sprint(obj.(*appsv1.ReplicaSet).Status.Replicas)}
		},
		Scale: &registry.ScaleSubresource{
			Get: func(obj runtime.Object) (int32, int32, string) {
				rs := obj.(*appsv1.ReplicaSet)
				return ptr.Deref(rs.Spec.Replicas, 0), rs.Status.Replicas, pod.SelectorString(rs.Spec.Selector)
			},
			SetReplicas: func(obj runtime.Object, n int32) { obj.(*appsv1.ReplicaSet).Spec.Replicas = &n },
		},
		Table: &registry.TableColumns{
			Columns: append([]metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Desired", Type: "integer", Description: appsv1.ReplicaSetSpec{}.SwaggerDoc()["replicas"]},
				{Name: "Current", Type: "integer", Description: appsv1.ReplicaSetStatus{}.SwaggerDoc()["replicas"]},
				{Name: "Ready", Type: "integer", Description: appsv1.ReplicaSetStatus{}.SwaggerDoc()["readyReplicas"]},
				registry.AgeColumn,
			}, pod.TemplateColumnDefinitions(appsv1.ReplicaSetSpec{}.SwaggerDoc()["selector"])...),
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				rs := obj.(*appsv1.ReplicaSet)
				containers, images := pod.TemplateColumns(&rs.Spec.Template)
				return []interface{}{rs.Name, int64(ptr.Deref(rs.Spec.Replicas, 0)), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
					registry.Age(rs.CreationTimestamp, now), containers, images, pod.SelectorString(rs.Spec.Selector)}
			},
		},
	}
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.Spec.Replicas == nil {
		one := int32(1)
		rs.Spec.Replicas = &one
	}
	pod.DefaultPodSpec(&rs.Spec.Template.Spec)
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*appsv1.ReplicaSet))
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	errs := validate(rs)
	return append(errs, registry.Immutable(pod.SelectorString(rs.Spec.Selector) != pod.SelectorString(oldRS.Spec.Selector), field.NewPath("spec", "selector"))...)
}

func validate(rs *appsv1.ReplicaSet) field.ErrorList {
	spec := field.NewPath("spec")
	errs := pod.ValidateReplicas(rs.Spec.Replicas, spec.Child("replicas"))
	errs = append(errs, pod.ValidateSelectedTemplate(rs.Spec.Selector, &rs.Spec.Template, spec)...)
	if p := rs.Spec.Template.Spec.RestartPolicy; p != "" && p != "Always" {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), p, []string{"Always"}))
	}
	if rs.Spec.MinReadySeconds < 0 {
		errs = append(errs, field.Invalid(spec.Child("minReadySeconds"), rs.Spec.MinReadySeconds, "must be greater than or equal to 0"))
	}
	return errs
}
