// Package replicationcontroller is the registry strategy for core/v1
// replicationcontrollers.
package replicationcontroller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// NewResource describes the replicationcontrollers resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("replicationcontrollers"),
		Kind:                 "ReplicationController",
		SingularName:         "replicationcontroller",
		ShortNames:           []string{"rc"},
		Categories:           []string{"all"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &corev1.ReplicationController{} },
		NewList:              func() runtime.Object { return &corev1.ReplicationControllerList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.replicas": fmt.Sprint(obj.(*corev1.ReplicationController).Status.Replicas)}
		},
		Scale: &registry.ScaleSubresource{
			Get: func(obj runtime.Object) (int32, int32, string) {
				rc := obj.(*corev1.ReplicationController)
				return ptr.Deref(rc.Spec.Replicas, 0), rc.Status.Replicas, labels.SelectorFromSet(rc.Spec.Selector).String()
			},
			SetReplicas: func(obj runtime.Object, n int32) { obj.(*corev1.ReplicationController).Spec.Replicas = &n },
		},
		Table: &registry.TableColumns{
			Columns: append([]metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Desired", Type: "integer", Description: corev1.ReplicationControllerSpec{}.SwaggerDoc()["replicas"]},
				{Name: "Current", Type: "integer", Description: corev1.ReplicationControllerStatus{}.SwaggerDoc()["replicas"]},
				{Name: "Ready", Type: "integer", Description: corev1.ReplicationControllerStatus{}.SwaggerDoc()["readyReplicas"]},
				registry.AgeColumn,
			}, pod.TemplateColumnDefinitions(corev1.ReplicationControllerSpec{}.SwaggerDoc()["selector"])...),
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				rc := obj.(*corev1.ReplicationController)
				containers, images := "", ""
				if rc.Spec.Template != nil {
					containers, images = pod.TemplateColumns(rc.Spec.Template)
				}
				return []interface{}{rc.Name, int64(ptr.Deref(rc.Spec.Replicas, 0)), int64(rc.Status.Replicas), int64(rc.Status.ReadyReplicas),
					registry.Age(rc.CreationTimestamp, now), containers, images, labels.FormatLabels(rc.Spec.Selector)}
			},
		},
	}
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	rc := obj.(*corev1.ReplicationController)
	if t := rc.Spec.Template; t != nil {
		if len(rc.Spec.Selector) == 0 {
			rc.Spec.Selector = t.Labels
		}
		if len(rc.Labels) == 0 {
			rc.Labels = t.Labels
		}
		pod.DefaultPodSpec(&t.Spec)
	}
	if rc.Spec.Replicas == nil {
		one := int32(1)
		rc.Spec.Replicas = &one
	}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.ReplicationController))
}

func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.ReplicationController))
}

func validate(rc *corev1.ReplicationController) field.ErrorList {
	spec := field.NewPath("spec")
	errs := pod.ValidateReplicas(rc.Spec.Replicas, spec.Child("replicas"))
	if len(rc.Spec.Selector) == 0 {
		errs = append(errs, field.Required(spec.Child("selector"), ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabels(rc.Spec.Selector, spec.Child("selector"))...)
	}
	if rc.Spec.Template == nil {
		return append(errs, field.Required(spec.Child("template"), ""))
	}
	errs = append(errs, pod.ValidatePodTemplateSpec(rc.Spec.Template, spec.Child("template"))...)
	if len(rc.Spec.Selector) > 0 && !labels.SelectorFromSet(rc.Spec.Selector).Matches(labels.Set(rc.Spec.Template.Labels)) {
		errs = append(errs, field.Invalid(spec.Child("template", "metadata", "labels"), rc.Spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	if p := rc.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), p, []string{string(corev1.RestartPolicyAlways)}))
	}
	return errs
}
