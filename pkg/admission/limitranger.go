package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/skiff/skiff/pkg/registry"
)

// LimitRanger applies the LimitRanges of a pod's namespace on create, as
// upstream's plugin does: container defaults first, then min, max and
// maxLimitRequestRatio per container and per pod.
type LimitRanger struct {
	// LimitRanges returns the limitranges store (nil until it exists).
	LimitRanges func() *registry.Store
}

var _ registry.Mutator = LimitRanger{}

// Mutates implements registry.Mutator: the defaults it sets are validated.
func (LimitRanger) Mutates() {}

// Admit implements registry.Admitter.
func (l LimitRanger) Admit(ctx context.Context, a *registry.Attributes) error {
	pod, ok := a.Object.(*corev1.Pod)
	if !ok || a.Operation != registry.Create || a.Subresource != "" {
		return nil
	}
	store := l.LimitRanges()
	if store == nil {
		return nil
	}
	list, err := store.List(ctx, a.Namespace, &metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing limit ranges: %w", err)
	}
	var errs []error
	for _, lr := range list.(*corev1.LimitRangeList).Items {
		for _, item := range lr.Spec.Limits {
			item = withDefaults(item)
			switch item.Type {
			case corev1.LimitTypeContainer:
				for i := range pod.Spec.InitContainers {
					applyDefaults(&pod.Spec.InitContainers[i].Resources, item)
				}
				for i := range pod.Spec.Containers {
					applyDefaults(&pod.Spec.Containers[i].Resources, item)
				}
				for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
					for _, c := range cs {
						errs = append(errs, bounds(item, "Container", c.Resources.Requests, c.Resources.Limits)...)
					}
				}
			case corev1.LimitTypePod:
				req, lim := podTotals(pod)
				errs = append(errs, bounds(item, "Pod", req, lim)...)
			}
		}
	}
	if len(errs) > 0 {
		return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, utilerrors.NewAggregate(errs))
	}
	return nil
}

// withDefaults fills a container item's default from max and its
// defaultRequest from default, then min, as upstream's API defaulting does.
func withDefaults(item corev1.LimitRangeItem) corev1.LimitRangeItem {
	if item.Type != corev1.LimitTypeContainer {
		return item
	}
	item = *item.DeepCopy()
	if item.Default == nil {
		item.Default = corev1.ResourceList{}
	}
	if item.DefaultRequest == nil {
		item.DefaultRequest = corev1.ResourceList{}
	}
	for k, v := range item.Max {
		if _, ok := item.Default[k]; !ok {
			item.Default[k] = v
		}
	}
	for k, v := range item.Default {
		if _, ok := item.DefaultRequest[k]; !ok {
			item.DefaultRequest[k] = v
		}
	}
	for k, v := range item.Min {
		if _, ok := item.DefaultRequest[k]; !ok {
			item.DefaultRequest[k] = v
		}
	}
	return item
}

// applyDefaults sets the limits and requests a container leaves unset.
func applyDefaults(r *corev1.ResourceRequirements, item corev1.LimitRangeItem) {
	for k, v := range item.Default {
		if _, ok := r.Limits[k]; !ok {
			if r.Limits == nil {
				r.Limits = corev1.ResourceList{}
			}
			r.Limits[k] = v.DeepCopy()
		}
	}
	for k, v := range item.DefaultRequest {
		if _, ok := r.Requests[k]; !ok {
			if r.Requests == nil {
				r.Requests = corev1.ResourceList{}
			}
			r.Requests[k] = v.DeepCopy()
		}
	}
}

// podTotals sums the containers' requests and limits.
func podTotals(pod *corev1.Pod) (req, lim corev1.ResourceList) {
	req, lim = corev1.ResourceList{}, corev1.ResourceList{}
	for _, c := range pod.Spec.Containers {
		for k, v := range c.Resources.Requests {
			q := req[k]
			q.Add(v)
			req[k] = q
		}
		for k, v := range c.Resources.Limits {
			q := lim[k]
			q.Add(v)
			lim[k] = q
		}
	}
	return req, lim
}

// bounds checks requests and limits against item's min, max and
// maxLimitRequestRatio with upstream's messages.
func bounds(item corev1.LimitRangeItem, kind string, req, lim corev1.ResourceList) []error {
	var errs []error
	for k, min := range item.Min {
		r, ok := req[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", k, kind, min.String()))
		case r.Cmp(min) < 0:
			errs = append(errs, fmt.Errorf("minimum %s usage per %s is %s, but request is %s", k, kind, min.String(), r.String()))
		}
	}
	for k, max := range item.Max {
		l, ok := lim[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", k, kind, max.String()))
		case l.Cmp(max) > 0:
			errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", k, kind, max.String(), l.String()))
		default:
			if r, ok := req[k]; ok && r.Cmp(max) > 0 {
				errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s, but request is %s", k, kind, max.String(), r.String()))
			}
		}
	}
	for k, ratio := range item.MaxLimitRequestRatio {
		l, lok := lim[k]
		r, rok := req[k]
		switch {
		case !lok:
			errs = append(errs, fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified", k, kind, ratio.String()))
		case !rok || r.IsZero():
			errs = append(errs, fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", k, kind, ratio.String()))
		default:
			got := float64(l.MilliValue()) / float64(r.MilliValue())
			if got > float64(ratio.MilliValue())/1000 {
				errs = append(errs, fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", k, kind, ratio.String(), got))
			}
		}
	}
	return errs
}
