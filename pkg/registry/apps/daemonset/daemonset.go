// Package daemonset is the registry strategy for apps/v1 daemonsets.
package daemonset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// NewResource describes the daemonsets resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: appsv1.SchemeGroupVersion.WithResource("daemonsets"),
		Kind:                 "DaemonSet",
		SingularName:         "daemonset",
		ShortNames:           []string{"ds"},
		Categories:           []string{"all"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &appsv1.DaemonSet{} },
		NewList:              func() runtime.Object { return &appsv1.DaemonSetList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Table: &registry.TableColumns{
			Columns: append([]metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Desired", Type: "integer", Description: appsv1.DaemonSetStatus{}.SwaggerDoc()["desiredNumberScheduled"]},
				{Name: "Current", Type: "integer", Description: appsv1.DaemonSetStatus{}.SwaggerDoc()["currentNumberScheduled"]},
				{Name: "Ready", Type: "integer", Description: appsv1.DaemonSetStatus{}.SwaggerDoc()["numberReady"]},
				{Name: "Up-to-date", Type: "integer", Description: appsv1.DaemonSetStatus{}.SwaggerDoc()["updatedNumberScheduled"]},
				{Name: "Available", Type: "integer", Description: appsv1.DaemonSetStatus{}.SwaggerDoc()["numberAvailable"]},
				{Name: "Node Selector", Type: "string", Description: "The node selector of the daemon set's pod template."},
				registry.AgeColumn,
			}, pod.TemplateColumnDefinitions(appsv1.DaemonSetSpec{}.SwaggerDoc()["selector"])...),
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				ds := obj.(*appsv1.DaemonSet)
				st := ds.Status
				nodeSel := labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector)
				containers, images := pod.TemplateColumns(&ds.Spec.Template)
				return []interface{}{ds.Name, int64(st.DesiredNumberScheduled), int64(st.CurrentNumberScheduled), int64(st.NumberReady),
					int64(st.UpdatedNumberScheduled), int64(st.NumberAvailable), nodeSel, registry.Age(ds.CreationTimestamp, now),
					containers, images, pod.SelectorString(ds.Spec.Selector)}
			},
		},
	}
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	ds := obj.(*appsv1.DaemonSet)
	s := &ds.Spec
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if s.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
			one := intstr.FromInt32(1)
			s.UpdateStrategy.RollingUpdate.MaxUnavailable = &one
		}
		if s.UpdateStrategy.RollingUpdate.MaxSurge == nil {
			zero := intstr.FromInt32(0)
			s.UpdateStrategy.RollingUpdate.MaxSurge = &zero
		}
	}
	if s.RevisionHistoryLimit == nil {
		ten := int32(10)
		s.RevisionHistoryLimit = &ten
	}
	pod.DefaultPodSpec(&s.Template.Spec)
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*appsv1.DaemonSet))
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ds, oldDS := obj.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
	return append(validate(ds), registry.Immutable(pod.SelectorString(ds.Spec.Selector) != pod.SelectorString(oldDS.Spec.Selector), field.NewPath("spec", "selector"))...)
}

func validate(ds *appsv1.DaemonSet) field.ErrorList {
	spec := field.NewPath("spec")
	errs := pod.ValidateSelectedTemplate(ds.Spec.Selector, &ds.Spec.Template, spec)
	if p := ds.Spec.Template.Spec.RestartPolicy; p != "" && p != "Always" {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), p, []string{"Always"}))
	}
	us := spec.Child("updateStrategy")
	switch ds.Spec.UpdateStrategy.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
			errs = append(errs, registry.ValidateIntOrPercent(ru.MaxUnavailable, us.Child("rollingUpdate", "maxUnavailable"))...)
			errs = append(errs, registry.ValidateIntOrPercent(ru.MaxSurge, us.Child("rollingUpdate", "maxSurge"))...)
		}
	default:
		errs = append(errs, field.NotSupported(us.Child("type"), ds.Spec.UpdateStrategy.Type, []string{string(appsv1.OnDeleteDaemonSetStrategyType), string(appsv1.RollingUpdateDaemonSetStrategyType)}))
	}
	return errs
}
