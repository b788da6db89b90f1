package kubelet

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A pod setting an unsafe sysctl the node does not allow fails with
// SysctlForbidden, as upstream's kubelet rejects it; its sysctls reach the
// sandbox config by dotted name.
func TestRejectForbiddenSysctl(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u"},
		Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.msgmax", Value: "1"}}}}}
	client := fake.NewSimpleClientset(p)
	k := New(Config{NodeName: "node", Client: client})
	msg := k.cfg.Sysctls.Admit(p)
	if msg == "" {
		t.Fatal("kernel.msgmax admitted by default")
	}
	if err := k.rejectPod(context.Background(), p, "SysctlForbidden", msg); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().Pods("default").Get(context.Background(), "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodFailed || got.Status.Reason != "SysctlForbidden" || got.Status.Message != "Pod was rejected: "+msg {
		t.Fatalf("status %+v", got.Status)
	}
	safe := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel/shm_rmid_forced", Value: "1"}}}}}
	if msg := k.cfg.Sysctls.Admit(safe); msg != "" {
		t.Fatalf("safe sysctl rejected: %s", msg)
	}
	if s := k.sandboxConfig(safe, 0).GetLinux().GetSysctls(); s["kernel.shm_rmid_forced"] != "1" {
		t.Fatalf("sandbox sysctls %v", s)
	}
}
