package kubelet

import (
	"context"
	"fmt"
	"strings"
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
		// The generation this status was computed for (upstream 1.34+).
		ObservedGeneration: max(p.Generation, p.Status.ObservedGeneration),
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
	hasInit := len(p.Spec.InitContainers) > 0
	initDone := true
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		cs := k.containerStatus(p, c, st, hasInit, initRestarts(p, c))
		if !isSidecar(c) {
			// A regular init container is ready once it succeeded.
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
			if !cs.Ready {
				initDone = false
			}
		}
		out.InitContainerStatuses = append(out.InitContainerStatuses, cs)
	}
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		out.ContainerStatuses = append(out.ContainerStatuses, k.containerStatus(p, c, st, hasInit, func(exitCode int32) bool {
			return shouldRestart(p.Spec.RestartPolicy, exitCode)
		}))
	}
	out.Phase = phase(p, out, initDone)
	out.Conditions = podConditions(p, out, st.readySandbox() != nil, metav1.NewTime(k.cfg.Clock.Now().Truncate(time.Second)))
	return out
}

// initRestarts says whether init container c is started again after it
// exited with exitCode: a sidecar always, a regular one only after a
// failure and unless the pod never restarts.
func initRestarts(p *corev1.Pod, c *corev1.Container) func(exitCode int32) bool {
	return func(exitCode int32) bool {
		if isSidecar(c) {
			return true
		}
		return exitCode != 0 && p.Spec.RestartPolicy != corev1.RestartPolicyNever
	}
}

// Condition reasons, as upstream's kubelet sets them.
const (
	reasonContainersNotInitialized = "ContainersNotInitialized"
	reasonContainersNotReady       = "ContainersNotReady"
	reasonReadinessGatesNotReady   = "ReadinessGatesNotReady"
	reasonPodCompleted             = "PodCompleted"
	reasonPodFailed                = "PodFailed"
	reasonSandboxNotReady          = "PodSandboxNotReady"
)

// kubeletConditions are the condition types the kubelet owns; the others
// (PodScheduled, readiness gates, DisruptionTarget, ...) are kept as other
// writers set them.
var kubeletConditions = map[corev1.PodConditionType]bool{
	corev1.PodReadyToStartContainers: true, corev1.PodInitialized: true, corev1.PodReady: true, corev1.ContainersReady: true,
}

// podConditions computes the kubelet's pod conditions from status (its
// phase and container statuses) as upstream's status generators do,
// keeping the transition times of conditions whose status did not change
// and every condition another writer owns.
func podConditions(p *corev1.Pod, status corev1.PodStatus, sandboxReady bool, now metav1.Time) []corev1.PodCondition {
	ready := containersReadyCondition(p, status)
	podReady := ready
	podReady.Type = corev1.PodReady
	if ready.Status == corev1.ConditionTrue {
		podReady = readinessGatesCondition(p)
	}
	sandbox := corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue}
	if !sandboxReady {
		sandbox.Status, sandbox.Reason = corev1.ConditionFalse, reasonSandboxNotReady
	}
	out := []corev1.PodCondition{sandbox, initializedCondition(p, status), podReady, ready}
	for i := range out {
		out[i].ObservedGeneration = p.Generation
		out[i].LastTransitionTime = now
		for _, old := range p.Status.Conditions {
			if old.Type == out[i].Type && old.Status == out[i].Status {
				out[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	for _, c := range p.Status.Conditions {
		if !kubeletConditions[c.Type] {
			out = append(out, c)
		}
	}
	return out
}

// initializedCondition is True once every init container completed (a
// sidecar: started), once any app container has run, or for a pod that
// succeeded.
func initializedCondition(p *corev1.Pod, status corev1.PodStatus) corev1.PodCondition {
	c := corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
	if status.Phase == corev1.PodSucceeded {
		c.Reason = reasonPodCompleted
		return c
	}
	for _, cs := range status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return c
		}
	}
	var incomplete []string
	for i, ic := range p.Spec.InitContainers {
		cs := status.InitContainerStatuses[i]
		done := cs.Ready
		if isSidecar(&ic) {
			done = cs.Started != nil && *cs.Started
		}
		if !done {
			incomplete = append(incomplete, ic.Name)
		}
	}
	if len(incomplete) > 0 {
		c.Status, c.Reason = corev1.ConditionFalse, reasonContainersNotInitialized
		c.Message = fmt.Sprintf("containers with incomplete status: %s", incomplete)
	}
	return c
}

// containersReadyCondition is True when every app container and sidecar
// is ready; a finished pod's is False with the phase as its reason.
func containersReadyCondition(p *corev1.Pod, status corev1.PodStatus) corev1.PodCondition {
	c := corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse}
	switch status.Phase {
	case corev1.PodSucceeded:
		c.Reason = reasonPodCompleted
		return c
	case corev1.PodFailed:
		c.Reason = reasonPodFailed
		return c
	}
	var unready []string
	for i, ic := range p.Spec.InitContainers {
		if isSidecar(&ic) && !status.InitContainerStatuses[i].Ready {
			unready = append(unready, ic.Name)
		}
	}
	for _, cs := range status.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	if len(unready) > 0 {
		c.Reason = reasonContainersNotReady
		c.Message = fmt.Sprintf("containers with unready status: %s", unready)
		return c
	}
	c.Status = corev1.ConditionTrue
	return c
}

// readinessGatesCondition is the Ready condition of a pod whose containers
// are ready: True unless a readiness gate's condition is missing or not
// True.
func readinessGatesCondition(p *corev1.Pod) corev1.PodCondition {
	var unready []string
	for _, g := range p.Spec.ReadinessGates {
		var found *corev1.PodCondition
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == g.ConditionType {
				found = &p.Status.Conditions[i]
			}
		}
		switch {
		case found == nil:
			unready = append(unready, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		case found.Status != corev1.ConditionTrue:
			unready = append(unready, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, found.Status))
		}
	}
	if len(unready) > 0 {
		return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: reasonReadinessGatesNotReady, Message: strings.Join(unready, ", ")}
	}
	return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
}

// containerStatus reports one container from its newest CRI container.
// A container that never ran waits with PodInitializing in a pod with init
// containers, else ContainerCreating, as upstream reports it; restarts says
// whether an exit with that code is followed by a restart (CrashLoopBackOff
// while it waits).
func (k *Kubelet) containerStatus(p *corev1.Pod, c *corev1.Container, st *runtimeState, hasInit bool, restarts func(exitCode int32) bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	list := st.byName[c.Name]
	waitingReason := reasonContainerCreating
	if hasInit {
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
	case state.Terminated != nil && restarts(state.Terminated.ExitCode) && p.DeletionTimestamp == nil:
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
