// Package lease is the registry strategy for coordination.k8s.io/v1
// leases (node heartbeats and leader election).
package lease

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
)

// NewResource describes the leases resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: coordinationv1.SchemeGroupVersion.WithResource("leases"),
		Kind:                 "Lease",
		SingularName:         "lease",
		Namespaced:           true,
		New:                  func() runtime.Object { return &coordinationv1.Lease{} },
		NewList:              func() runtime.Object { return &coordinationv1.LeaseList{} },
		Strategy:             strategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Holder", Type: "string", Description: coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				l := obj.(*coordinationv1.Lease)
				return []interface{}{l.Name, ptr.Deref(l.Spec.HolderIdentity, ""), registry.Age(l.CreationTimestamp, now)}
			},
		},
	}
}

type strategy struct{ registry.DefaultStrategy }

// AllowCreateOnUpdate implements registry.Strategy: lease holders PUT
// their lease whether or not it exists, as upstream allows.
func (strategy) AllowCreateOnUpdate() bool { return true }

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*coordinationv1.Lease))
}

// ValidateUpdate implements registry.Strategy.
func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return Validate(obj.(*coordinationv1.Lease))
}

var strategies = sets.New(coordinationv1.OldestEmulationVersion)

// Validate checks a lease's spec as upstream's ValidateLeaseSpec does;
// holderIdentity is free-form.
func Validate(l *coordinationv1.Lease) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if d := l.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(spec.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	if t := l.Spec.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(spec.Child("leaseTransitions"), *t, "must be greater than or equal to 0"))
	}
	if s := l.Spec.Strategy; s != nil && !strategies.Has(*s) {
		errs = append(errs, field.NotSupported(spec.Child("strategy"), *s, sets.List(strategies)))
	}
	if h := l.Spec.PreferredHolder; h != nil && *h != "" && (l.Spec.Strategy == nil || *l.Spec.Strategy == "") {
		errs = append(errs, field.Forbidden(spec.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}
