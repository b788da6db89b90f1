package pod

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/disruptionbudget"
	"github.com/skiff/skiff/pkg/registry"
)

// maxDisruptedPods bounds status.disruptedPods: past it, evictions the
// disruption controller has not yet seen through are too many, and
// further ones are refused (upstream's MaxDisruptedPodSize).
const maxDisruptedPods = 2000

// evictor serves pods/eviction as upstream's EvictionREST does: a pod
// that is not running (pending, finished) or already being deleted goes
// at once; a running pod covered by a PodDisruptionBudget goes only when
// the budget allows one more disruption, which the eviction spends by
// decrementing status.disruptionsAllowed and recording the pod in
// status.disruptedPods before deleting it.
type evictor struct {
	pods *registry.Store
	// budgets is the poddisruptionbudgets store; nil means no budgets
	// are served and every eviction is a deletion.
	budgets *registry.Store
	clock   clock.PassiveClock
}

// evict evicts the named pod as ev asks; dryRun is the request's dryRun
// parameter.
func (e *evictor) evict(ctx context.Context, ns, name string, ev *policyv1.Eviction, dryRun bool) (runtime.Object, error) {
	if ev.Name != name {
		return nil, apierrors.NewBadRequest("name in URL does not match name in Eviction object")
	}
	opts, err := deleteOptions(ev, dryRun)
	if err != nil {
		return nil, err
	}
	success := &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}

	// A pod that is not running can go without a budget check; the
	// deletion is conditional on the pod read, so that a pod turning
	// running meanwhile is not deleted unchecked. A conflict then rereads
	// the pod, unless the client gave its own resourceVersion.
	var p *corev1.Pod
	deleted := false
	retryable := apierrors.IsConflict
	if !resourceVersionUnset(opts) {
		retryable = func(error) bool { return false }
	}
	err = retry.OnError(retry.DefaultRetry, retryable, func() error {
		obj, err := e.pods.Get(ctx, ns, name, &metav1.GetOptions{})
		if err != nil {
			return err
		}
		p = obj.(*corev1.Pod)
		if !canIgnoreBudgets(p) {
			return nil
		}
		o := opts
		if enforceResourceVersion(p) && resourceVersionUnset(opts) {
			o = withResourceVersion(opts, p.ResourceVersion)
		}
		if err := e.markAndDelete(ctx, ns, name, o); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if deleted {
		return success, nil
	}

	// A pod that is not the one the client means fails before the
	// budget is spent for it.
	if pre := opts.Preconditions; pre != nil && pre.UID != nil && *pre.UID != "" && *pre.UID != p.UID {
		return nil, uidConflict(name, *pre.UID, p.UID)
	}
	pdbs, err := e.covering(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(pdbs) > 1 {
		return nil, &apierrors.StatusError{ErrStatus: metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusInternalServerError,
			Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
		}}
	}
	// unhealthyGo: an unready pod leaves without spending the budget; the
	// deletion is then conditional on the pod not having become ready.
	unhealthyGo, budget := false, ""
	if len(pdbs) == 1 {
		pdb := pdbs[0]
		budget = pdb.Name
		if !disruptionbudget.Healthy(p) {
			if pdb.Spec.UnhealthyPodEvictionPolicy != nil && *pdb.Spec.UnhealthyPodEvictionPolicy == policyv1.AlwaysAllow {
				unhealthyGo = true
			} else if pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0 {
				// IfHealthyBudget: the application is not disrupted now,
				// and losing a pod that serves nothing does not disrupt it.
				unhealthyGo = true
			}
		}
		if !unhealthyGo {
			if err := e.spend(ctx, ns, pdb.Name, p.Name, len(opts.DryRun) > 0); err != nil {
				return nil, err
			}
		}
	}
	o := opts
	if unhealthyGo {
		o = withResourceVersion(opts, p.ResourceVersion)
	}
	if err := e.markAndDelete(ctx, ns, name, o); err != nil {
		if apierrors.IsConflict(err) && unhealthyGo && resourceVersionUnset(opts) {
			// The pod changed (became ready, perhaps): the client should
			// ask again.
			return nil, stillProcessing(budget)
		}
		return nil, err
	}
	return success, nil
}

// deleteOptions are the eviction's delete options with the request's dry
// run, which must not contradict the body's.
func deleteOptions(ev *policyv1.Eviction, dryRun bool) (*metav1.DeleteOptions, error) {
	var query []string
	if dryRun {
		query = []string{metav1.DryRunAll}
	}
	if ev.DeleteOptions == nil {
		return &metav1.DeleteOptions{DryRun: query}, nil
	}
	opts := ev.DeleteOptions.DeepCopy()
	switch {
	case len(opts.DryRun) == 0:
		opts.DryRun = query
	case len(query) > 0 && !slices.Equal(opts.DryRun, query):
		return nil, apierrors.NewBadRequest(fmt.Sprintf("Non-matching dry-run options in request and content: %v and %v", query, opts.DryRun))
	}
	return opts, nil
}

// canIgnoreBudgets reports whether the pod may go without a budget check:
// it is pending, has finished, or is already being deleted.
func canIgnoreBudgets(p *corev1.Pod) bool {
	switch p.Status.Phase {
	case corev1.PodPending, corev1.PodSucceeded, corev1.PodFailed:
		return true
	}
	return p.DeletionTimestamp != nil
}

// enforceResourceVersion reports whether deleting p without a budget
// check must be conditional on the version read: finished pods and pods
// being deleted cannot turn into healthy ones.
func enforceResourceVersion(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	return p.DeletionTimestamp == nil
}

func resourceVersionUnset(o *metav1.DeleteOptions) bool {
	return o.Preconditions == nil || o.Preconditions.ResourceVersion == nil
}

func withResourceVersion(o *metav1.DeleteOptions, rv string) *metav1.DeleteOptions {
	o = o.DeepCopy()
	if o.Preconditions == nil {
		o.Preconditions = &metav1.Preconditions{}
	}
	o.Preconditions.ResourceVersion = &rv
	return o
}

// covering returns the budgets of p's namespace that select it.
func (e *evictor) covering(ctx context.Context, p *corev1.Pod) ([]*policyv1.PodDisruptionBudget, error) {
	if e.budgets == nil {
		return nil, nil
	}
	obj, err := e.budgets.List(ctx, p.Namespace, &metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []*policyv1.PodDisruptionBudget
	for i := range obj.(*policyv1.PodDisruptionBudgetList).Items {
		pdb := &obj.(*policyv1.PodDisruptionBudgetList).Items[i]
		if disruptionbudget.Selects(pdb, p) {
			out = append(out, pdb)
		}
	}
	return out, nil
}

// spend takes one disruption from the named budget for pod, on the
// stored budget (so concurrent evictions cannot both spend the last
// one): it refuses with 429 TooManyRequests when the controller has not
// yet seen the budget's spec or no disruption is left.
func (e *evictor) spend(ctx context.Context, ns, budget, pod string, dryRun bool) error {
	_, _, err := e.budgets.Update(ctx, ns, budget, func(_ context.Context, old runtime.Object) (runtime.Object, error) {
		if old == nil {
			return nil, apierrors.NewNotFound(policyv1.Resource("poddisruptionbudgets"), budget)
		}
		pdb := old.(*policyv1.PodDisruptionBudget)
		st := &pdb.Status
		switch {
		case st.ObservedGeneration < pdb.Generation:
			return nil, stillProcessing(pdb.Name)
		case st.DisruptionsAllowed < 0:
			return nil, apierrors.NewForbidden(policyv1.Resource("poddisruptionbudget"), pdb.Name, fmt.Errorf("pdb disruptions allowed is negative"))
		case len(st.DisruptedPods) > maxDisruptedPods:
			return nil, apierrors.NewForbidden(policyv1.Resource("poddisruptionbudget"), pdb.Name, fmt.Errorf("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
		case st.DisruptionsAllowed == 0:
			err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
				Type:    policyv1.DisruptionBudgetCause,
				Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, st.DesiredHealthy, st.CurrentHealthy),
			})
			return nil, err
		}
		now := e.clock.Now()
		st.DisruptionsAllowed--
		if st.DisruptionsAllowed == 0 {
			disruptionbudget.SetDisruptionAllowed(pdb, now)
		}
		// The controller counts the pod as gone from now on, and stops
		// once disruptionbudget.DeletionTimeout has passed.
		if st.DisruptedPods == nil {
			st.DisruptedPods = map[string]metav1.Time{}
		}
		st.DisruptedPods[pod] = metav1.NewTime(now)
		return pdb, nil
	}, registry.UpdateOptions{Subresource: "status", DryRun: dryRun})
	return err
}

// stillProcessing is the 429 for a budget whose status is behind its
// spec (or an unready pod that changed while being evicted).
func stillProcessing(budget string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type:    policyv1.DisruptionBudgetCause,
		Message: fmt.Sprintf("The disruption budget %s is still being processed by the server.", budget),
	})
	return err
}

// markAndDelete sets the pod's DisruptionTarget condition (unless dry
// run) and deletes it with opts, whose preconditions hold for both
// writes.
func (e *evictor) markAndDelete(ctx context.Context, ns, name string, opts *metav1.DeleteOptions) error {
	if len(opts.DryRun) == 0 {
		obj, _, err := e.pods.Update(ctx, ns, name, func(_ context.Context, old runtime.Object) (runtime.Object, error) {
			if old == nil {
				return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
			}
			p := old.(*corev1.Pod)
			if pre := opts.Preconditions; pre != nil {
				if pre.UID != nil && *pre.UID != "" && *pre.UID != p.UID {
					return nil, uidConflict(name, *pre.UID, p.UID)
				}
				if pre.ResourceVersion != nil && *pre.ResourceVersion != "" && *pre.ResourceVersion != p.ResourceVersion {
					return nil, apierrors.NewConflict(corev1.Resource("pods"), name, fmt.Errorf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", *pre.ResourceVersion, p.ResourceVersion))
				}
			}
			setCondition(&p.Status, corev1.PodCondition{
				Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting",
				ObservedGeneration: p.Generation, LastTransitionTime: metav1.NewTime(e.clock.Now()),
			})
			return p, nil
		}, registry.UpdateOptions{Subresource: "status"})
		if err != nil {
			return err
		}
		if !resourceVersionUnset(opts) {
			// The condition is our own change: the delete is conditional
			// on the version it made.
			opts = withResourceVersion(opts, obj.(*corev1.Pod).ResourceVersion)
		}
	}
	_, _, err := e.pods.Delete(ctx, ns, name, opts)
	return err
}

func uidConflict(name string, want, got types.UID) error {
	return apierrors.NewConflict(corev1.Resource("pods"), name, fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", want, got))
}
