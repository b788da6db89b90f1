// Package resourcequota is the registry strategy for core/v1
// resourcequotas: validation of hard limits and scopes, the status
// subresource the quota controller writes, and kubectl's table.
package resourcequota

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// NewResource describes the resourcequotas resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("resourcequotas"),
		Kind:                 "ResourceQuota",
		SingularName:         "resourcequota",
		ShortNames:           []string{"quota"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.ResourceQuota{} },
		NewList:              func() runtime.Object { return &corev1.ResourceQuotaList{} },
		Strategy:             strategy{},
		Status: registry.StatusOnly{Validate: func(_ context.Context, obj, _ runtime.Object) field.ErrorList {
			return ValidateStatus(&obj.(*corev1.ResourceQuota).Status)
		}},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Request", Type: "string", Description: "Request represents a minimum amount of cpu/memory that a container may consume."},
				{Name: "Limit", Type: "string", Description: "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				q := obj.(*corev1.ResourceQuota)
				request, limit := Columns(q)
				return []interface{}{q.Name, request, limit, registry.Age(q.CreationTimestamp, now)}
			},
		},
	}
}

// Columns renders the REQUEST and LIMIT cells as kubectl does: "name:
// used/hard" for every resource in status.hard, limits.* in LIMIT.
func Columns(q *corev1.ResourceQuota) (request, limit string) {
	names := make([]string, 0, len(q.Status.Hard))
	for n := range q.Status.Hard {
		names = append(names, string(n))
	}
	sort.Strings(names)
	var req, lim []string
	for _, n := range names {
		used, hard := q.Status.Used[corev1.ResourceName(n)], q.Status.Hard[corev1.ResourceName(n)]
		cell := fmt.Sprintf("%s: %s/%s", n, used.String(), hard.String())
		if strings.HasPrefix(n, "limits.") {
			lim = append(lim, cell)
		} else {
			req = append(req, cell)
		}
	}
	return strings.Join(req, ", "), strings.Join(lim, ", ")
}

type strategy struct{ registry.SpecStatusStrategy }

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	q := obj.(*corev1.ResourceQuota)
	return append(ValidateSpec(&q.Spec, field.NewPath("spec")), ValidateStatus(&q.Status)...)
}

// ValidateUpdate implements registry.Strategy.
func (s strategy) ValidateUpdate(ctx context.Context, obj, _ runtime.Object) field.ErrorList {
	return s.Validate(ctx, obj)
}

// standardResources are the quota resource names without a domain that
// upstream accepts (IsStandardQuotaResourceName).
var standardResources = sets.New(
	"pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
	"persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
	"cpu", "memory", "ephemeral-storage", "storage",
	"requests.cpu", "requests.memory", "requests.ephemeral-storage", "requests.storage",
	"limits.cpu", "limits.memory", "limits.ephemeral-storage",
)

// podScopedResources are what the pod scopes (Terminating, BestEffort, ...)
// may limit.
var podScopedResources = sets.New("pods", "cpu", "memory", "requests.cpu", "requests.memory",
	"limits.cpu", "limits.memory", "ephemeral-storage", "requests.ephemeral-storage", "limits.ephemeral-storage")

// Scopes are the quota scopes upstream defines.
var Scopes = sets.New(corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating,
	corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort,
	corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity,
	corev1.ResourceQuotaScopeVolumeAttributesClass)

const invalidQuotaResource = "must be a standard resource for quota"

// ValidateResourceName checks a quota resource name as upstream's
// ValidateResourceQuotaResourceName does.
func ValidateResourceName(name string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(name) {
		errs = append(errs, field.Invalid(path, name, msg))
	}
	if len(errs) == 0 && !strings.Contains(name, "/") && !standardResources.Has(name) &&
		!strings.HasPrefix(name, "hugepages-") && !strings.HasPrefix(name, "requests.hugepages-") {
		errs = append(errs, field.Invalid(path, name, invalidQuotaResource))
	}
	return errs
}

func validateResourceList(list corev1.ResourceList, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, q := range list {
		p := path.Key(string(name))
		errs = append(errs, ValidateResourceName(string(name), p)...)
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p, q.String(), "must be greater than or equal to 0"))
		}
	}
	return errs
}

// ValidateSpec checks hard limits, scopes and the scope selector.
func ValidateSpec(spec *corev1.ResourceQuotaSpec, path *field.Path) field.ErrorList {
	errs := validateResourceList(spec.Hard, path.Child("hard"))
	scopes := sets.New[corev1.ResourceQuotaScope]()
	for i, s := range spec.Scopes {
		if !Scopes.Has(s) {
			errs = append(errs, field.Invalid(path.Child("scopes").Index(i), s, "unsupported scope"))
		}
		scopes.Insert(s)
	}
	if spec.ScopeSelector != nil {
		sel := path.Child("scopeSelector", "matchExpressions")
		for i, e := range spec.ScopeSelector.MatchExpressions {
			p := sel.Index(i)
			if !Scopes.Has(e.ScopeName) {
				errs = append(errs, field.Invalid(p.Child("scopeName"), e.ScopeName, "unsupported scope"))
			}
			switch e.Operator {
			case corev1.ScopeSelectorOpIn, corev1.ScopeSelectorOpNotIn:
				if len(e.Values) == 0 {
					errs = append(errs, field.Invalid(p.Child("values"), e.Values, "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
				}
			case corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpDoesNotExist:
				if len(e.Values) != 0 {
					errs = append(errs, field.Invalid(p.Child("values"), e.Values, "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
				}
			default:
				errs = append(errs, field.Invalid(p.Child("operator"), e.Operator, "not a valid selector operator"))
			}
			scopes.Insert(e.ScopeName)
		}
	}
	if scopes.Has(corev1.ResourceQuotaScopeTerminating) && scopes.Has(corev1.ResourceQuotaScopeNotTerminating) ||
		scopes.Has(corev1.ResourceQuotaScopeBestEffort) && scopes.Has(corev1.ResourceQuotaScopeNotBestEffort) {
		errs = append(errs, field.Invalid(path.Child("scopes"), spec.Scopes, "conflicting scopes"))
	}
	podScoped := scopes.Has(corev1.ResourceQuotaScopeTerminating) || scopes.Has(corev1.ResourceQuotaScopeNotTerminating) ||
		scopes.Has(corev1.ResourceQuotaScopeBestEffort) || scopes.Has(corev1.ResourceQuotaScopeNotBestEffort)
	if podScoped {
		for name := range spec.Hard {
			if !podScopedResources.Has(string(name)) {
				errs = append(errs, field.Invalid(path.Child("hard").Key(string(name)), name, "unsupported scope applied to resource"))
			}
		}
	}
	return errs
}

// ValidateStatus checks status.hard and status.used.
func ValidateStatus(st *corev1.ResourceQuotaStatus) field.ErrorList {
	path := field.NewPath("status")
	return append(validateResourceList(st.Hard, path.Child("hard")), validateResourceList(st.Used, path.Child("used"))...)
}
