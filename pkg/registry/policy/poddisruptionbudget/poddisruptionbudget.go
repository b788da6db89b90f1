// Package poddisruptionbudget is the registry strategy for policy/v1
// poddisruptionbudgets: upstream's validation (minAvailable or
// maxUnavailable, never both, as a non-negative count or a percentage of
// at most 100%; a valid selector; a known unhealthyPodEvictionPolicy), a
// generation bumped on every spec change, a status only the status
// subresource writes, and the columns kubectl shows.
//
// The disruption controller (pkg/controller/disruption) computes the
// status; the pods/eviction subresource (pkg/registry/pod) spends it.
package poddisruptionbudget

import (
	"context"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// NewResource describes the poddisruptionbudgets resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"),
		Kind:                 "PodDisruptionBudget",
		SingularName:         "poddisruptionbudget",
		ShortNames:           []string{"pdb"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
		NewList:              func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
		Strategy:             strategy{},
		Status: registry.StatusOnly{Validate: func(_ context.Context, obj, _ runtime.Object) field.ErrorList {
			return ValidateStatus(&obj.(*policyv1.PodDisruptionBudget).Status, field.NewPath("status"))
		}},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Min Available", Type: "string", Description: "The minimum number of pods that must be available."},
				{Name: "Max Unavailable", Type: "string", Description: "The maximum number of pods that may be unavailable."},
				{Name: "Allowed Disruptions", Type: "integer", Description: "Calculated number of pods that may be disrupted at this time."},
				registry.AgeColumn,
			},
			Row: row,
		},
	}
}

// row renders a budget as kubectl does: an unset bound shows as N/A.
func row(obj runtime.Object, now time.Time) []interface{} {
	pdb := obj.(*policyv1.PodDisruptionBudget)
	minAvailable, maxUnavailable := "N/A", "N/A"
	if v := pdb.Spec.MinAvailable; v != nil {
		minAvailable = v.String()
	}
	if v := pdb.Spec.MaxUnavailable; v != nil {
		maxUnavailable = v.String()
	}
	return []interface{}{pdb.Name, minAvailable, maxUnavailable, int64(pdb.Status.DisruptionsAllowed), registry.Age(pdb.CreationTimestamp, now)}
}

// strategy starts budgets with an empty status and keeps the stored one
// on spec updates; the spec of a policy/v1 budget may change.
type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return ValidateSpec(&obj.(*policyv1.PodDisruptionBudget).Spec, field.NewPath("spec"))
}

func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return ValidateSpec(&obj.(*policyv1.PodDisruptionBudget).Spec, field.NewPath("spec"))
}

var evictionPolicies = sets.New(string(policyv1.IfHealthyBudget), string(policyv1.AlwaysAllow))

// ValidateSpec checks a budget's spec as upstream's
// ValidatePodDisruptionBudgetSpec does.
func ValidateSpec(spec *policyv1.PodDisruptionBudgetSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(path, *spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	errs = append(errs, registry.ValidateIntOrPercent(spec.MinAvailable, path.Child("minAvailable"))...)
	errs = append(errs, registry.ValidateIntOrPercent(spec.MaxUnavailable, path.Child("maxUnavailable"))...)
	errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, path.Child("selector"))...)
	if p := spec.UnhealthyPodEvictionPolicy; p != nil && !evictionPolicies.Has(string(*p)) {
		errs = append(errs, field.NotSupported(path.Child("unhealthyPodEvictionPolicy"), *p, sets.List(evictionPolicies)))
	}
	return errs
}

// ValidateStatus checks a status written through the status subresource
// as upstream does for policy/v1: valid conditions and non-negative
// counts.
func ValidateStatus(s *policyv1.PodDisruptionBudgetStatus, path *field.Path) field.ErrorList {
	errs := metav1validation.ValidateConditions(s.Conditions, path.Child("conditions"))
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.DisruptionsAllowed), path.Child("disruptionsAllowed"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.CurrentHealthy), path.Child("currentHealthy"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.DesiredHealthy), path.Child("desiredHealthy"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.ExpectedPods), path.Child("expectedPods"))...)
	return errs
}
