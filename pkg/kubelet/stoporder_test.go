package kubelet

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// TestSidecarsStopAfterRegularContainers: a stopping pod's regular
// containers (their preStop hooks first) are stopped before its sidecars,
// so a preStop hook that reaches a sidecar still finds it.
func TestSidecarsStopAfterRegularContainers(t *testing.T) {
	f := newKubelet(t)
	pod := probePodSpec(corev1.Container{Name: "main", Lifecycle: &corev1.Lifecycle{
		PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"hook"}}},
	}}, corev1.RestartPolicyAlways)
	pod.Spec.InitContainers = []corev1.Container{{Name: "proxy", Image: "i", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
	running := runtimeapi.ContainerState_CONTAINER_RUNNING
	st := &runtimeState{byName: map[string][]*runtimeapi.ContainerStatus{
		"main":  {{Id: "main-id", State: running, Metadata: &runtimeapi.ContainerMetadata{Name: "main"}}},
		"proxy": {{Id: "proxy-id", State: running, Metadata: &runtimeapi.ContainerMetadata{Name: "proxy"}}},
	}}
	if err := f.k.stopContainers(context.Background(), st, 5, pod); err != nil {
		t.Fatal(err)
	}
	calls := f.rt.callList()
	hook := slices.Index(calls, "ExecSync main-id hook")
	stopMain := slices.IndexFunc(calls, func(c string) bool { return c == "StopContainer main-id 5" || c == "StopContainer main-id 3" })
	stopProxy := slices.IndexFunc(calls, func(c string) bool { return len(c) > 23 && c[:23] == "StopContainer proxy-id " })
	if hook < 0 || stopMain < 0 || stopProxy < 0 || !(hook < stopMain && stopMain < stopProxy) {
		t.Fatalf("calls %q: want main's preStop hook, main stopped, then the sidecar", calls)
	}
}
