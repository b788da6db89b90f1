package plugins

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// NodeUnschedulable rejects cordoned nodes unless the pod tolerates the
// node.kubernetes.io/unschedulable taint.
type NodeUnschedulable struct{}

// ReasonUnschedulable is upstream's reason text.
const ReasonUnschedulable = "node(s) were unschedulable"

func (NodeUnschedulable) Name() string { return "NodeUnschedulable" }

func (NodeUnschedulable) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	if !ni.Node.Spec.Unschedulable {
		return nil
	}
	taint := &corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	for i := range pod.Pod.Spec.Tolerations {
		if pod.Pod.Spec.Tolerations[i].ToleratesTaint(klog.Background(), taint, false) {
			return nil
		}
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonUnschedulable)
}
