// Package deployment is the registry strategy for apps/v1 deployments.
package deployment

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// NewResource describes the deployments resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: appsv1.SchemeGroupVersion.WithResource("deployments"),
		Kind:                 "Deployment",
		SingularName:         "deployment",
		ShortNames:           []string{"deploy"},
		Categories:           []string{"all"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &appsv1.Deployment{} },
		NewList:              func() runtime.Object { return &appsv1.DeploymentList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Scale: &registry.ScaleSubresource{
			Get: func(obj runtime.Object) (int32, int32, string) {
				d := obj.(*appsv1.Deployment)
				return ptr.Deref(d.Spec.Replicas, 0), d.Status.Replicas, pod.SelectorString(d.Spec.Selector)
			},
			SetReplicas: func(obj runtime.Object, n int32) { obj.(*appsv1.Deployment).Spec.Replicas = &n },
		},
		Table: &registry.TableColumns{
			Columns: append([]metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
				{Name: "Up-to-date", Type: "string", Description: appsv1.DeploymentStatus{}.SwaggerDoc()["updatedReplicas"]},
				{Name: "Available", Type: "string", Description: appsv1.DeploymentStatus{}.SwaggerDoc()["availableReplicas"]},
				registry.AgeColumn,
			}, pod.TemplateColumnDefinitions(appsv1.DeploymentSpec{}.SwaggerDoc()["selector"])...),
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				d := obj.(*appsv1.Deployment)
				containers, images := pod.TemplateColumns(&d.Spec.Template)
				return []interface{}{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0)), int64(d.Status.UpdatedReplicas),
					int64(d.Status.AvailableReplicas), registry.Age(d.CreationTimestamp, now), containers, images, pod.SelectorString(d.Spec.Selector)}
			},
		},
	}
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	d := obj.(*appsv1.Deployment)
	s := &d.Spec
	if s.Replicas == nil {
		one := int32(1)
		s.Replicas = &one
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		quarter := intstr.FromString("25%")
		if s.Strategy.RollingUpdate.MaxUnavailable == nil {
			s.Strategy.RollingUpdate.MaxUnavailable = &quarter
		}
		if s.Strategy.RollingUpdate.MaxSurge == nil {
			surge := quarter
			s.Strategy.RollingUpdate.MaxSurge = &surge
		}
	}
	if s.RevisionHistoryLimit == nil {
		ten := int32(10)
		s.RevisionHistoryLimit = &ten
	}
	if s.ProgressDeadlineSeconds == nil {
		six := int32(600)
		s.ProgressDeadlineSeconds = &six
	}
	pod.DefaultPodSpec(&s.Template.Spec)
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*appsv1.Deployment))
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	return append(validate(d), registry.Immutable(pod.SelectorString(d.Spec.Selector) != pod.SelectorString(oldD.Spec.Selector), field.NewPath("spec", "selector"))...)
}

func validate(d *appsv1.Deployment) field.ErrorList {
	spec := field.NewPath("spec")
	s := &d.Spec
	errs := pod.ValidateReplicas(s.Replicas, spec.Child("replicas"))
	errs = append(errs, pod.ValidateSelectedTemplate(s.Selector, &s.Template, spec)...)
	if p := s.Template.Spec.RestartPolicy; p != "" && p != "Always" {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), p, []string{"Always"}))
	}
	strat := spec.Child("strategy")
	switch s.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.Strategy.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(strat.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if ru := s.Strategy.RollingUpdate; ru != nil {
			errs = append(errs, registry.ValidateIntOrPercent(ru.MaxUnavailable, strat.Child("rollingUpdate", "maxUnavailable"))...)
			errs = append(errs, registry.ValidateIntOrPercent(ru.MaxSurge, strat.Child("rollingUpdate", "maxSurge"))...)
			if isZero(ru.MaxUnavailable) && isZero(ru.MaxSurge) {
				errs = append(errs, field.Invalid(strat.Child("rollingUpdate", "maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
			}
		}
	default:
		errs = append(errs, field.NotSupported(strat.Child("type"), s.Strategy.Type, []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)}))
	}
	if s.MinReadySeconds < 0 {
		errs = append(errs, field.Invalid(spec.Child("minReadySeconds"), s.MinReadySeconds, "must be greater than or equal to 0"))
	}
	if s.ProgressDeadlineSeconds != nil && *s.ProgressDeadlineSeconds <= s.MinReadySeconds {
		errs = append(errs, field.Invalid(spec.Child("progressDeadlineSeconds"), *s.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
	}
	if s.RevisionHistoryLimit != nil && *s.RevisionHistoryLimit < 0 {
		errs = append(errs, field.Invalid(spec.Child("revisionHistoryLimit"), *s.RevisionHistoryLimit, "must be greater than or equal to 0"))
	}
	return errs
}

func isZero(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, 100, true)
	return err == nil && n == 0
}
