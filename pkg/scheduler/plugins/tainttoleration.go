package plugins

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// TaintToleration rejects nodes with NoSchedule/NoExecute taints the pod
// does not tolerate and prefers nodes with fewer untolerated
// PreferNoSchedule taints. A node that is not Ready counts as tainted
// node.kubernetes.io/not-ready (unreachable when its status is Unknown),
// as the node lifecycle controller would taint it.
type TaintToleration struct{}

func (TaintToleration) Name() string { return "TaintToleration" }

// EffectiveTaints are the node's taints plus those its conditions imply.
func EffectiveTaints(node *corev1.Node) []corev1.Taint {
	taints := node.Spec.Taints
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady || c.Status == corev1.ConditionTrue {
			continue
		}
		key := corev1.TaintNodeNotReady
		if c.Status == corev1.ConditionUnknown {
			key = corev1.TaintNodeUnreachable
		}
		for _, t := range taints {
			if t.Key == key {
				return taints
			}
		}
		return append(append([]corev1.Taint{}, taints...), corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
	}
	return taints
}

func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(klog.Background(), t, false) {
			return true
		}
	}
	return false
}

func (TaintToleration) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	for _, t := range EffectiveTaints(ni.Node) {
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(pod.Pod.Spec.Tolerations, &t) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable,
				fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	return nil
}

// Score counts untolerated PreferNoSchedule taints (fewer is better).
func (TaintToleration) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) int64 {
	var n int64
	for _, t := range ni.Node.Spec.Taints {
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerated(pod.Pod.Spec.Tolerations, &t) {
			n++
		}
	}
	return n
}

func (TaintToleration) NormalizeScore(_ *framework.CycleState, _ *framework.PodInfo, scores []int64) {
	framework.DefaultNormalize(scores, true)
}
