package kubelet

import (
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// exited is a CRI container of name, attempt attempt, that exited with
// code.
func exited(name string, attempt uint32, code int32) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{
		Id: name + "-" + strconv.Itoa(int(attempt)), Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: code, StartedAt: 1e9, FinishedAt: 2e9,
	}
}

func running(name string) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{Id: name, Metadata: &runtimeapi.ContainerMetadata{Name: name}, State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: 1e9}
}

func condition(st corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

// stateOf names a container state as the conformance specs look at it:
// "waiting <reason>", "terminated <code>" or "running".
func stateOf(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return "waiting " + s.Waiting.Reason
	case s.Terminated != nil:
		return "terminated " + strconv.Itoa(int(s.Terminated.ExitCode))
	case s.Running != nil:
		return "running"
	}
	return ""
}

// Init container statuses, the pod's phase and its Initialized condition
// follow upstream's kubelet through the four InitContainer conformance
// scenarios: a succeeded init container is Ready and stays terminated
// (even in a RestartAlways pod), a failing one restarts in a RestartAlways
// pod and fails a RestartNever pod, and containers that never ran wait
// with PodInitializing.
func TestInitContainerStatuses(t *testing.T) {
	type want struct {
		phase        corev1.PodPhase
		init1, init2 string
		init1Ready   bool
		init1Restart int32
		run1         string
		initialized  corev1.PodCondition
		ready        corev1.PodCondition
	}
	for _, tc := range []struct {
		name       string
		policy     corev1.RestartPolicy
		containers map[string][]*runtimeapi.ContainerStatus
		want       want
	}{
		{"nothing ran yet", corev1.RestartPolicyAlways, nil, want{
			phase: corev1.PodPending, init1: "waiting PodInitializing", init2: "waiting PodInitializing", run1: "waiting PodInitializing",
			initialized: corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "ContainersNotInitialized", Message: "containers with incomplete status: [init1 init2]"},
			ready:       corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [run1]"},
		}},
		{"initialized, RestartAlways", corev1.RestartPolicyAlways, map[string][]*runtimeapi.ContainerStatus{
			"init1": {exited("init1", 0, 0)}, "init2": {exited("init2", 0, 0)}, "run1": {running("run1")},
		}, want{
			phase: corev1.PodRunning, init1: "terminated 0", init2: "terminated 0", init1Ready: true, run1: "running",
			initialized: corev1.PodCondition{Status: corev1.ConditionTrue},
			ready:       corev1.PodCondition{Status: corev1.ConditionTrue},
		}},
		{"first init container crash-looping, RestartAlways", corev1.RestartPolicyAlways, map[string][]*runtimeapi.ContainerStatus{
			"init1": {exited("init1", 2, 1), exited("init1", 1, 1)},
		}, want{
			phase: corev1.PodPending, init1: "waiting CrashLoopBackOff", init1Restart: 2, init2: "waiting PodInitializing", run1: "waiting PodInitializing",
			initialized: corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "ContainersNotInitialized", Message: "containers with incomplete status: [init1 init2]"},
			ready:       corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [run1]"},
		}},
		{"second init container failed, RestartNever", corev1.RestartPolicyNever, map[string][]*runtimeapi.ContainerStatus{
			"init1": {exited("init1", 0, 0)}, "init2": {exited("init2", 0, 1)},
		}, want{
			phase: corev1.PodFailed, init1: "terminated 0", init1Ready: true, init2: "terminated 1", run1: "waiting PodInitializing",
			initialized: corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "ContainersNotInitialized", Message: "containers with incomplete status: [init2]"},
			ready:       corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "PodFailed"},
		}},
		{"all done, RestartNever", corev1.RestartPolicyNever, map[string][]*runtimeapi.ContainerStatus{
			"init1": {exited("init1", 0, 0)}, "init2": {exited("init2", 0, 0)}, "run1": {exited("run1", 0, 0)},
		}, want{
			phase: corev1.PodSucceeded, init1: "terminated 0", init1Ready: true, init2: "terminated 0", run1: "terminated 0",
			initialized: corev1.PodCondition{Status: corev1.ConditionTrue, Reason: "PodCompleted"},
			ready:       corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "PodCompleted"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newKubelet(t)
			pod := probePodSpec(corev1.Container{Name: "run1"}, tc.policy)
			pod.Spec.InitContainers = []corev1.Container{{Name: "init1", Image: "busybox"}, {Name: "init2", Image: "busybox"}}
			st := &runtimeState{
				sandboxes: []*runtimeapi.PodSandbox{{Id: "sb", State: runtimeapi.PodSandboxState_SANDBOX_READY}},
				byName:    map[string][]*runtimeapi.ContainerStatus{},
			}
			for name, list := range tc.containers {
				st.byName[name] = list
			}
			status := f.k.podStatus(pod, st)
			got := want{
				phase: status.Phase,
				init1: stateOf(status.InitContainerStatuses[0].State), init2: stateOf(status.InitContainerStatuses[1].State),
				init1Ready: status.InitContainerStatuses[0].Ready, init1Restart: status.InitContainerStatuses[0].RestartCount,
				run1:        stateOf(status.ContainerStatuses[0].State),
				initialized: condition(status, corev1.PodInitialized),
				ready:       condition(status, corev1.PodReady),
			}
			got.initialized.Type, got.initialized.LastTransitionTime = "", metav1.Time{}
			got.ready.Type, got.ready.LastTransitionTime = "", metav1.Time{}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			if init2 := status.InitContainerStatuses[1]; init2.State.Terminated != nil && init2.State.Terminated.ExitCode != 0 && init2.Ready {
				t.Errorf("failed init container is Ready")
			}
			if ready := condition(status, corev1.ContainersReady); ready.Reason != tc.want.ready.Reason || ready.Status != tc.want.ready.Status {
				t.Errorf("ContainersReady %+v, want the Ready condition's status and reason %+v", ready, tc.want.ready)
			}
		})
	}
}

// The Ready condition waits for the pod's readiness gates, and conditions
// other writers own (a readiness gate's, PodScheduled) are kept.
func TestReadinessGatesAndForeignConditions(t *testing.T) {
	f := newKubelet(t)
	pod := probePodSpec(corev1.Container{Name: "main"}, corev1.RestartPolicyAlways)
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/gate"}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	status := f.k.podStatus(pod, runningState(f.clock.Now()))
	if c := condition(status, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" ||
		c.Message != `corresponding condition of pod readiness gate "example.com/gate" does not exist.` {
		t.Fatalf("Ready without the gate's condition: %+v", c)
	}
	if c := condition(status, corev1.ContainersReady); c.Status != corev1.ConditionTrue {
		t.Fatalf("ContainersReady %+v", c)
	}
	pod.Status.Conditions = append(status.Conditions, corev1.PodCondition{Type: "example.com/gate", Status: corev1.ConditionTrue})
	status = f.k.podStatus(pod, runningState(f.clock.Now()))
	if c := condition(status, corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Fatalf("Ready with the gate True: %+v", c)
	}
	for _, ty := range []corev1.PodConditionType{corev1.PodScheduled, "example.com/gate"} {
		if c := condition(status, ty); c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s not kept: %+v", ty, status.Conditions)
		}
	}
	if n := len(status.Conditions); n != 6 {
		t.Errorf("%d conditions, want 6: %+v", n, status.Conditions)
	}
}

// The status and the kubelet's conditions report the generation they were
// computed for, never going back.
func TestObservedGeneration(t *testing.T) {
	f := newKubelet(t)
	pod := probePodSpec(corev1.Container{Name: "main"}, corev1.RestartPolicyAlways)
	pod.Generation = 7
	status := f.k.podStatus(pod, runningState(f.clock.Now()))
	if status.ObservedGeneration != 7 {
		t.Fatalf("observedGeneration %d, want 7", status.ObservedGeneration)
	}
	for _, ty := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady} {
		if c := condition(status, ty); c.ObservedGeneration != 7 {
			t.Errorf("condition %s observedGeneration %d, want 7", ty, c.ObservedGeneration)
		}
	}
	pod.Status.ObservedGeneration = 9
	if got := f.k.podStatus(pod, runningState(f.clock.Now())).ObservedGeneration; got != 9 {
		t.Errorf("observedGeneration went back to %d", got)
	}
}
