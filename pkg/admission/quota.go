package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/quota"
	"github.com/skiff/skiff/pkg/registry"
)

// ResourceQuota rejects creates that would exceed a quota of their
// namespace and charges the others to the quotas' status.used at once, as
// upstream's ResourceQuota plugin does, so back-to-back creates cannot
// overshoot before the quota controller recounts.
type ResourceQuota struct {
	// Quotas returns the resourcequotas store (nil until it exists).
	Quotas func() *registry.Store
}

var _ registry.Admitter = ResourceQuota{}

// Admit implements registry.Admitter.
func (r ResourceQuota) Admit(ctx context.Context, a *registry.Attributes) error {
	if a.Operation != registry.Create || a.Subresource != "" || !a.Resource.Namespaced || a.Namespace == "" {
		return nil
	}
	store := r.Quotas()
	if store == nil {
		return nil
	}
	list, err := store.List(ctx, a.Namespace, &metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing resource quotas: %w", err)
	}
	quotas := list.(*corev1.ResourceQuotaList).Items
	if len(quotas) == 0 {
		return nil
	}
	usage := quota.Usage(a.Resource.GroupResource(), a.Object)
	var charge []*corev1.ResourceQuota
	for i := range quotas {
		q := &quotas[i]
		if !quota.Matches(q, a.Object) || len(quota.Filter(q, usage)) == 0 {
			continue
		}
		if err := check(q, usage, a); err != nil {
			return err
		}
		charge = append(charge, q)
	}
	if a.DryRun {
		return nil
	}
	for _, q := range charge {
		_, _, err := store.Update(ctx, a.Namespace, q.Name, func(_ context.Context, old runtime.Object) (runtime.Object, error) {
			cur := old.(*corev1.ResourceQuota).DeepCopy()
			if err := check(cur, usage, a); err != nil {
				return nil, err
			}
			cur.Status.Used = quota.Add(cur.Status.Used, quota.Filter(cur, usage))
			return cur, nil
		}, registry.UpdateOptions{Subresource: "status"})
		if err != nil {
			return err
		}
	}
	return nil
}

// check returns upstream's Forbidden error when charging usage to q would
// exceed its hard limits or q's usage is not yet known.
func check(q *corev1.ResourceQuota, usage corev1.ResourceList, a *registry.Attributes) error {
	requested := quota.Filter(q, usage)
	exceeded := corev1.ResourceList{}
	for name, req := range requested {
		used, ok := q.Status.Used[name]
		if !ok {
			return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name,
				fmt.Errorf("status unknown for quota: %s, resource: %s", q.Name, name))
		}
		next := used.DeepCopy()
		next.Add(req)
		if hard := q.Spec.Hard[name]; next.Cmp(hard) > 0 {
			exceeded[name] = req
		}
	}
	if len(exceeded) == 0 {
		return nil
	}
	mask := func(l corev1.ResourceList) corev1.ResourceList {
		out := corev1.ResourceList{}
		for name := range exceeded {
			out[name] = l[name]
		}
		return out
	}
	return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name,
		fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
			q.Name, quota.Format(exceeded), quota.Format(mask(q.Status.Used)), quota.Format(mask(q.Spec.Hard))))
}
