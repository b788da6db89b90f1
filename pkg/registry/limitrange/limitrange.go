// Package limitrange is the registry strategy for core/v1 limitranges: the
// per-namespace defaults and bounds the LimitRanger admission applies.
package limitrange

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// NewResource describes the limitranges resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("limitranges"),
		Kind:                 "LimitRange",
		SingularName:         "limitrange",
		ShortNames:           []string{"limits"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.LimitRange{} },
		NewList:              func() runtime.Object { return &corev1.LimitRangeList{} },
		Strategy:             strategy{},
		Table: &registry.TableColumns{
			// Upstream has no printer for limit ranges: the default table.
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Created At", Type: "date", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]},
			},
			Row: func(obj runtime.Object, _ time.Time) []interface{} {
				l := obj.(*corev1.LimitRange)
				return []interface{}{l.Name, l.CreationTimestamp.UTC().Format(time.RFC3339)}
			},
		},
	}
}

type strategy struct{ registry.DefaultStrategy }

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.LimitRange))
}

// ValidateUpdate implements registry.Strategy.
func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.LimitRange))
}

var limitTypes = sets.New(corev1.LimitTypePod, corev1.LimitTypeContainer, corev1.LimitTypePersistentVolumeClaim)

// Validate checks a limit range as upstream's ValidateLimitRange does: one
// item per type, and for every resource min <= defaultRequest <= default <=
// max and a maxLimitRequestRatio of at least 1 that max/min allows.
func Validate(l *corev1.LimitRange) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[corev1.LimitType]()
	for i, item := range l.Spec.Limits {
		p := field.NewPath("spec", "limits").Index(i)
		if !limitTypes.Has(item.Type) {
			errs = append(errs, field.NotSupported(p.Child("type"), item.Type, sets.List(limitTypes)))
		}
		if seen.Has(item.Type) {
			errs = append(errs, field.Duplicate(p.Child("type"), item.Type))
		}
		seen.Insert(item.Type)
		for _, f := range []struct {
			name string
			list corev1.ResourceList
		}{{"max", item.Max}, {"min", item.Min}, {"default", item.Default}, {"defaultRequest", item.DefaultRequest}, {"maxLimitRequestRatio", item.MaxLimitRequestRatio}} {
			for name, q := range f.list {
				kp := p.Child(f.name).Key(string(name))
				for _, msg := range validation.IsQualifiedName(string(name)) {
					errs = append(errs, field.Invalid(kp, name, msg))
				}
				if q.Sign() < 0 {
					errs = append(errs, field.Invalid(kp, q.String(), "must be greater than or equal to 0"))
				}
			}
		}
		if item.Type == corev1.LimitTypePod {
			if len(item.Default) > 0 {
				errs = append(errs, field.Forbidden(p.Child("default"), "may not be specified when `type` is 'Pod'"))
			}
			if len(item.DefaultRequest) > 0 {
				errs = append(errs, field.Forbidden(p.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
			}
		}
		if item.Type == corev1.LimitTypePersistentVolumeClaim {
			_, minOK := item.Min[corev1.ResourceStorage]
			_, maxOK := item.Max[corev1.ResourceStorage]
			if !minOK && !maxOK {
				errs = append(errs, field.Required(p.Child("limits"), "either minimum or maximum storage value is required, but neither was provided"))
			}
		}
		names := sets.New[corev1.ResourceName]()
		for _, list := range []corev1.ResourceList{item.Max, item.Min, item.Default, item.DefaultRequest, item.MaxLimitRequestRatio} {
			for n := range list {
				names.Insert(n)
			}
		}
		for _, n := range sets.List(names) {
			errs = append(errs, validateBounds(item, n, p)...)
		}
	}
	return errs
}

func validateBounds(item corev1.LimitRangeItem, n corev1.ResourceName, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	minQ, hasMin := item.Min[n]
	maxQ, hasMax := item.Max[n]
	def, hasDef := item.Default[n]
	defReq, hasDefReq := item.DefaultRequest[n]
	ratio, hasRatio := item.MaxLimitRequestRatio[n]
	key := string(n)
	if hasMin && hasMax && minQ.Cmp(maxQ) > 0 {
		errs = append(errs, field.Invalid(p.Child("min").Key(key), minQ.String(), fmt.Sprintf("min value %s is greater than max value %s", minQ.String(), maxQ.String())))
	}
	if hasDefReq && hasMin && minQ.Cmp(defReq) > 0 {
		errs = append(errs, field.Invalid(p.Child("defaultRequest").Key(key), defReq.String(), fmt.Sprintf("min value %s is greater than default request value %s", minQ.String(), defReq.String())))
	}
	if hasDefReq && hasMax && defReq.Cmp(maxQ) > 0 {
		errs = append(errs, field.Invalid(p.Child("defaultRequest").Key(key), defReq.String(), fmt.Sprintf("default request value %s is greater than max value %s", defReq.String(), maxQ.String())))
	}
	if hasDefReq && hasDef && defReq.Cmp(def) > 0 {
		errs = append(errs, field.Invalid(p.Child("defaultRequest").Key(key), defReq.String(), fmt.Sprintf("default request value %s is greater than default limit value %s", defReq.String(), def.String())))
	}
	if hasDef && hasMin && minQ.Cmp(def) > 0 {
		errs = append(errs, field.Invalid(p.Child("default").Key(key), minQ.String(), fmt.Sprintf("min value %s is greater than default value %s", minQ.String(), def.String())))
	}
	if hasDef && hasMax && def.Cmp(maxQ) > 0 {
		errs = append(errs, field.Invalid(p.Child("default").Key(key), maxQ.String(), fmt.Sprintf("default value %s is greater than max value %s", def.String(), maxQ.String())))
	}
	if hasRatio && ratio.Cmp(resource.MustParse("1")) < 0 {
		errs = append(errs, field.Invalid(p.Child("maxLimitRequestRatio").Key(key), ratio.String(), fmt.Sprintf("ratio %s is less than 1", ratio.String())))
	}
	if hasRatio && hasMin && hasMax && minQ.MilliValue() > 0 {
		if maxRatio := float64(maxQ.MilliValue()) / float64(minQ.MilliValue()); float64(ratio.MilliValue())/1000 > maxRatio {
			errs = append(errs, field.Invalid(p.Child("maxLimitRequestRatio").Key(key), ratio.String(), fmt.Sprintf("ratio %s is greater than max/min = %f", ratio.String(), maxRatio)))
		}
	}
	return errs
}
