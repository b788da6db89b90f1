package kubelet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/registry/pod"
)

// ContainerIDPrefix names skiff's runtime in containerIDs ("skiff://<id>").
const ContainerIDPrefix = "skiff://"

// podStatus computes the pod's status from the runtime's state, keeping
// condition transition times that did not change.
func (k *Kubelet) podStatus(p *corev1.Pod, st *runtimeState) corev1.PodStatus {
	out := corev1.PodStatus{
		HostIP:            k.cfg.NodeIP,
		QOSClass:          pod.QOSClass(&p.Spec),
		NominatedNodeName: p.Status.NominatedNodeName,
	}
	if k.cfg.NodeIP != "" {
		out.HostIPs = []corev1.HostIP{{IP: k.cfg.NodeIP}}
	}
	switch {
	case p.Spec.HostNetwork:
		out.PodIP, out.PodIPs = k.cfg.NodeIP, []corev1.PodIP{{IP: k.cfg.NodeIP}}
	case st.podIP != "":
		out.PodIP, out.PodIPs = st.podIP, []corev1.PodIP{{IP: st.podIP}}
	}
	k.mu.Lock()
	if t, ok := k.startTimes[p.UID]; ok {
		start := metav1.NewTime(t.Truncate(time.Second))
		out.StartTime = &start
	}
	k.mu.Unlock()
	if p.Status.StartTime != nil {
		out.StartTime = p.Status.StartTime
	}
	initDone := true
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		cs := k.containerStatus(p, c, st, i > 0 && !initDone)
		out.InitContainerStatuses = append(out.InitContainerStatuses, cs)
		if !isSidecar(c) && (cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0) {
			initDone = false
		}
	}
	allReady := true
	for i := range p.Spec.Containers {
		cs := k.containerStatus(p, &p.Spec.Containers[i], st, !initDone)
		out.ContainerStatuses = append(out.ContainerStatuses, cs)
		allReady = allReady && cs.Ready
	}
	out.Phase = phase(p, out, initDone)
	sandboxReady := st.readySandbox() != nil
	now := metav1.NewTime(k.cfg.Clock.Now().Truncate(time.Second))
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, LastTransitionTime: now}
		if ok {
			c.Status, c.Reason = corev1.ConditionTrue, ""
		}
		for _, old := range p.Status.Conditions {
			if old.Type == t && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	terminal := out.Phase == corev1.PodSucceeded || out.Phase == corev1.PodFailed
	ready := initDone && allReady && !terminal
	readyReason := "ContainersNotReady"
	if terminal {
		readyReason = "PodCompleted"
	}
	initReason := "ContainersNotInitialized"
	if terminal && initDone {
		initReason = "PodCompleted"
	}
	out.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, sandboxReady, ""),
		cond(corev1.PodInitialized, initDone, initReason),
		cond(corev1.PodReady, ready, readyReason),
		cond(corev1.ContainersReady, ready, readyReason),
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			out.Conditions = append(out.Conditions, c)
		}
	}
	return out
}

// containerStatus reports one container from its newest CRI container.
func (k *Kubelet) containerStatus(p *corev1.Pod, c *corev1.Container, st *runtimeState, notStartedYet bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	list := st.byName[c.Name]
	waitingReason := reasonContainerCreating
	if notStartedYet {
		waitingReason = reasonPodInitializing
	}
	if we := k.waitingErrorOf(p, c.Name); we != nil {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: we.reason, Message: we.err.Error()}
	}
	if len(list) == 0 {
		if cs.State.Waiting == nil {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waitingReason}
		}
		return cs
	}
	latest := list[0]
	cs.RestartCount = int32(latest.Metadata.Attempt)
	cs.ImageID = latest.ImageRef
	cs.ContainerID = ContainerIDPrefix + latest.Id
	if len(list) > 1 {
		cs.LastTerminationState = k.state(p, c, list[1])
	}
	state := k.state(p, c, latest)
	// A container has started once its startup probe (if any) succeeded,
	// and is ready once started and its readiness probe (if any)
	// succeeded.
	started := k.probes.Started(p.UID, c, cs.ContainerID, state.Running != nil)
	cs.Started = &started
	switch {
	case state.Running != nil:
		cs.State = state
		cs.Ready = k.probes.Ready(p.UID, c, cs.ContainerID, started)
	case state.Terminated != nil && shouldRestart(p.Spec.RestartPolicy, state.Terminated.ExitCode) && p.DeletionTimestamp == nil:
		// Waiting out the back-off before the restart.
		cs.LastTerminationState = state
		wait := k.backoffRemaining(p, c)
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason:  reasonCrashLoopBackOff,
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", wait, c.Name, p.Name, p.Namespace, p.UID),
		}}
	case cs.State.Waiting == nil:
		cs.State = state
	}
	return cs
}

// state converts a CRI container status to a container state.
func (k *Kubelet) state(p *corev1.Pod, c *corev1.Container, s *runtimeapi.ContainerStatus) corev1.ContainerState {
	switch s.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, s.StartedAt).Truncate(time.Second))}}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		msg := s.Message
		m := k.terminationMessage(p, c.Name, s.Metadata.Attempt)
		if fallbackToLogs(c, s.ExitCode, m) && s.LogPath != "" {
			m = k.logTail(context.TODO(), s.LogPath)
		}
		if m != "" {
			msg = m
		}
		t := &corev1.ContainerStateTerminated{
			ExitCode:    s.ExitCode,
			Reason:      s.Reason,
			Message:     msg,
			StartedAt:   metav1.NewTime(time.Unix(0, s.StartedAt).Truncate(time.Second)),
			FinishedAt:  metav1.NewTime(time.Unix(0, s.FinishedAt).Truncate(time.Second)),
			ContainerID: ContainerIDPrefix + s.Id,
		}
		return corev1.ContainerState{Terminated: t}
	}
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}}
}

// phase follows upstream's getPhase.
func phase(p *corev1.Pod, st corev1.PodStatus, initDone bool) corev1.PodPhase {
	if !initDone {
		for _, cs := range st.InitContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && p.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return corev1.PodFailed
			}
		}
		return corev1.PodPending
	}
	var waiting, running, succeeded, failed int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			succeeded++
		case cs.State.Terminated != nil:
			failed++
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			// Restarting after an exit.
			running++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case failed > 0:
		return corev1.PodFailed
	case succeeded > 0:
		return corev1.PodSucceeded
	}
	return corev1.PodPending
}
