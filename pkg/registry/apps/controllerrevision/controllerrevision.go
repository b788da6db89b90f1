// Package controllerrevision is the registry strategy for apps/v1
// controllerrevisions, the immutable history DaemonSets and StatefulSets
// keep of their pod templates.
package controllerrevision

import (
	"context"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// NewResource describes the controllerrevisions resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: appsv1.SchemeGroupVersion.WithResource("controllerrevisions"),
		Kind:                 "ControllerRevision",
		SingularName:         "controllerrevision",
		Namespaced:           true,
		New:                  func() runtime.Object { return &appsv1.ControllerRevision{} },
		NewList:              func() runtime.Object { return &appsv1.ControllerRevisionList{} },
		Strategy:             strategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Controller", Type: "string", Description: "Controller of the object"},
				{Name: "Revision", Type: "integer", Description: appsv1.ControllerRevision{}.SwaggerDoc()["revision"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				r := obj.(*appsv1.ControllerRevision)
				controller := "<none>"
				if ref := metav1.GetControllerOf(r); ref != nil {
					controller = controllerName(ref)
				}
				return []interface{}{r.Name, controller, r.Revision, registry.Age(r.CreationTimestamp, now)}
			},
		},
	}
}

// controllerName renders an owner as kubectl does: "daemonset.apps/name".
func controllerName(ref *metav1.OwnerReference) string {
	kind := strings.ToLower(ref.Kind)
	if gv, err := schema.ParseGroupVersion(ref.APIVersion); err == nil && gv.Group != "" {
		kind += "." + gv.Group
	}
	return kind + "/" + ref.Name
}

type strategy struct{ registry.DefaultStrategy }

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	r := obj.(*appsv1.ControllerRevision)
	if r.Revision < 0 {
		return field.ErrorList{field.Invalid(field.NewPath("revision"), r.Revision, "must be greater than or equal to 0")}
	}
	return nil
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	r, o := obj.(*appsv1.ControllerRevision), old.(*appsv1.ControllerRevision)
	errs := strategy{}.Validate(context.Background(), obj)
	return append(errs, registry.Immutable(!apiequality.Semantic.DeepEqual(r.Data, o.Data), field.NewPath("data"))...)
}
