// Package disruptionbudget holds the PodDisruptionBudget rules that the
// eviction subresource (pkg/registry/pod) and the disruption controller
// (pkg/controller/disruption) must agree on: which budgets cover a pod,
// which pods count as healthy, how long an approved eviction is awaited,
// and the DisruptionAllowed condition both of them write.
package disruptionbudget

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/kubectl/pkg/util/podutils"
)

// DeletionTimeout is how long after an eviction was approved (its entry in
// status.disruptedPods) the pod is expected to be gone; after it, the
// controller stops counting the pod as disrupted, as upstream's.
const DeletionTimeout = 2 * time.Minute

// Selects reports whether pdb covers p: same namespace and a selector that
// matches p's labels. As in policy/v1, an empty selector selects every pod
// of the namespace and a missing or invalid one selects none.
func Selects(pdb *policyv1.PodDisruptionBudget, p *corev1.Pod) bool {
	if pdb.Namespace != p.Namespace {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(p.Labels))
}

// Healthy reports whether p counts towards currentHealthy: Ready, as
// upstream's IsPodReady, which is what both eviction and the controller
// use.
func Healthy(p *corev1.Pod) bool { return podutils.IsPodReady(p) }

// SetDisruptionAllowed sets the DisruptionAllowed condition from
// status.disruptionsAllowed: True with reason SufficientPods when
// disruptions are allowed, else False with InsufficientPods. now stamps a
// transition.
func SetDisruptionAllowed(pdb *policyv1.PodDisruptionBudget, now time.Time) {
	c := metav1.Condition{
		Type:               policyv1.DisruptionAllowedCondition,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1.InsufficientPodsReason,
		ObservedGeneration: pdb.Status.ObservedGeneration,
		LastTransitionTime: metav1.NewTime(now),
	}
	if pdb.Status.DisruptionsAllowed > 0 {
		c.Status, c.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	SetCondition(pdb, c)
}

// SetCondition sets c in pdb's conditions, keeping the last transition
// time when the status does not change.
func SetCondition(pdb *policyv1.PodDisruptionBudget, c metav1.Condition) {
	if pdb.Status.Conditions == nil {
		pdb.Status.Conditions = []metav1.Condition{}
	}
	apimeta.SetStatusCondition(&pdb.Status.Conditions, c)
}

// ConditionUpToDate reports whether the DisruptionAllowed condition
// matches the status and the status was computed for the current
// generation.
func ConditionUpToDate(pdb *policyv1.PodDisruptionBudget) bool {
	c := apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if c == nil || pdb.Status.ObservedGeneration != pdb.Generation {
		return false
	}
	if pdb.Status.DisruptionsAllowed > 0 {
		return c.Status == metav1.ConditionTrue && c.Reason == policyv1.SufficientPodsReason
	}
	return c.Status == metav1.ConditionFalse && c.Reason == policyv1.InsufficientPodsReason
}
