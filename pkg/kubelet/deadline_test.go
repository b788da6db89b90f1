package kubelet

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The deadline counts from the pod's startTime and is read afresh, so
// lowering it on a running pod takes effect at once.
func TestPastActiveDeadline(t *testing.T) {
	f := newKubelet(t)
	pod := probePodSpec(corev1.Container{Name: "main"}, corev1.RestartPolicyAlways)
	if f.k.pastActiveDeadline(pod) {
		t.Fatal("no deadline, yet past it")
	}
	start := metav1.NewTime(f.clock.Now())
	pod.Status.StartTime = &start
	d := int64(60)
	pod.Spec.ActiveDeadlineSeconds = &d
	f.clock.Step(10 * time.Second)
	if f.k.pastActiveDeadline(pod) {
		t.Fatal("past a 60s deadline after 10s")
	}
	d = 5
	if !f.k.pastActiveDeadline(pod) {
		t.Fatal("a deadline lowered to 5s not past after 10s")
	}
}
