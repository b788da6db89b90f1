package nodelifecycle

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

type conditionTaint struct {
	typ    corev1.NodeConditionType
	status corev1.ConditionStatus
	key    string
}

// conditionTaints maps a node condition in a status to the NoSchedule
// taint that says so, as upstream's TaintNodesByCondition.
var conditionTaints = []conditionTaint{
	{corev1.NodeReady, corev1.ConditionFalse, corev1.TaintNodeNotReady},
	{corev1.NodeReady, corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
	{corev1.NodeMemoryPressure, corev1.ConditionTrue, corev1.TaintNodeMemoryPressure},
	{corev1.NodeDiskPressure, corev1.ConditionTrue, corev1.TaintNodeDiskPressure},
	{corev1.NodePIDPressure, corev1.ConditionTrue, corev1.TaintNodePIDPressure},
	{corev1.NodeNetworkUnavailable, corev1.ConditionTrue, corev1.TaintNodeNetworkUnavailable},
}

// isConditionTaint reports whether t is a NoSchedule taint this
// controller derives from conditions or spec.unschedulable.
func isConditionTaint(t corev1.Taint) bool {
	if t.Effect != corev1.TaintEffectNoSchedule {
		return false
	}
	return t.Key == corev1.TaintNodeUnschedulable || slices.ContainsFunc(conditionTaints, func(c conditionTaint) bool { return c.key == t.Key })
}

// noScheduleTaints are the NoSchedule taints n's conditions and
// spec.unschedulable call for.
func noScheduleTaints(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, ct := range conditionTaints {
		if c := condition(&n.Status, ct.typ); c != nil && c.Status == ct.status {
			out = append(out, corev1.Taint{Key: ct.key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if n.Spec.Unschedulable {
		out = append(out, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}

// syncNoSchedule brings the node's condition NoSchedule taints in line
// with its conditions and spec.unschedulable.
func (c *Controller) syncNoSchedule(ctx context.Context, name string) error {
	n, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if slices.EqualFunc(slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool { return !isConditionTaint(t) }),
		noScheduleTaints(n), func(a, b corev1.Taint) bool { return a.MatchTaint(&b) }) {
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := noScheduleTaints(n)
		taints := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool {
			return isConditionTaint(t) && !slices.ContainsFunc(want, matches(t))
		})
		for _, t := range want {
			if !slices.ContainsFunc(taints, matches(t)) {
				taints = append(taints, t)
			}
		}
		if len(taints) == len(n.Spec.Taints) && slices.EqualFunc(taints, n.Spec.Taints, func(a, b corev1.Taint) bool { return a.MatchTaint(&b) }) {
			return nil
		}
		n.Spec.Taints = taints
		_, err = c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update NoSchedule taints of node %s: %w", name, err)
	}
	return nil
}
