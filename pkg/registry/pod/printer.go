package pod

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry"
)

// NodeUnreachablePodReason is the status reason of pods on unreachable nodes.
const NodeUnreachablePodReason = "NodeLost"

var columns = []metav1.TableColumnDefinition{
	registry.NameColumn,
	{Name: "Ready", Type: "string", Description: "The aggregate readiness state of this pod for accepting traffic."},
	{Name: "Status", Type: "string", Description: "The aggregate status of the containers in this pod."},
	{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
	registry.AgeColumn,
	{Name: "IP", Type: "string", Priority: 1, Description: corev1.PodStatus{}.SwaggerDoc()["podIP"]},
	{Name: "Node", Type: "string", Priority: 1, Description: corev1.PodSpec{}.SwaggerDoc()["nodeName"]},
	{Name: "Nominated Node", Type: "string", Priority: 1, Description: corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"]},
	{Name: "Readiness Gates", Type: "string", Priority: 1, Description: corev1.PodSpec{}.SwaggerDoc()["readinessGates"]},
}

func row(obj runtime.Object, now time.Time) []interface{} {
	p := obj.(*corev1.Pod)
	ready, total, restarts, lastRestart, status := Summary(p)
	restartCell := fmt.Sprint(restarts)
	if !lastRestart.IsZero() {
		restartCell = fmt.Sprintf("%d (%s ago)", restarts, registry.Age(lastRestart, now))
	}
	ip, node, nominated, gates := "<none>", "<none>", "<none>", "<none>"
	if p.Status.PodIP != "" {
		ip = p.Status.PodIP
	}
	if p.Spec.NodeName != "" {
		node = p.Spec.NodeName
	}
	if p.Status.NominatedNodeName != "" {
		nominated = p.Status.NominatedNodeName
	}
	if len(p.Spec.ReadinessGates) > 0 {
		passed := 0
		for _, g := range p.Spec.ReadinessGates {
			for _, c := range p.Status.Conditions {
				if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
					passed++
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", passed, len(p.Spec.ReadinessGates))
	}
	return []interface{}{p.Name, fmt.Sprintf("%d/%d", ready, total), status, restartCell, registry.Age(p.CreationTimestamp, now), ip, node, nominated, gates}
}

// Summary computes the READY counts, restarts, last restart time and the
// STATUS string kubectl shows for a pod, following upstream's printer.
func Summary(p *corev1.Pod) (ready, total, restarts int, lastRestart metav1.Time, status string) {
	total = len(p.Spec.Containers)
	sidecars := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
			total++
		}
	}
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}
	noteRestart := func(cs corev1.ContainerStatus) {
		restarts += int(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart.Time) {
			lastRestart = t.FinishedAt
		}
	}
	initializing := false
	for i, cs := range p.Status.InitContainerStatuses {
		noteRestart(cs)
		if sidecars[cs.Name] {
			if cs.Started != nil && *cs.Started && cs.Ready {
				ready++
			}
			if cs.Started != nil && *cs.Started {
				continue
			}
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			switch {
			case t.Reason != "":
				reason = "Init:" + t.Reason
			case t.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", t.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		hasRunning := false
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := p.Status.ContainerStatuses[i]
			noteRestart(cs)
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "Running"
			if !podReady(p) {
				reason = "NotReady"
			}
		}
	} else {
		for _, cs := range p.Status.ContainerStatuses {
			noteRestart(cs)
		}
	}
	if p.DeletionTimestamp != nil {
		if p.Status.Reason == NodeUnreachablePodReason {
			reason = "Unknown"
		} else if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			reason = "Terminating"
		}
	}
	return ready, total, restarts, lastRestart, reason
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
