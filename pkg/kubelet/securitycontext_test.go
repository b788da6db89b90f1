package kubelet

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// no_new_privs is set only when allowPrivilegeEscalation is explicitly
// false, as upstream's kubelet (securitycontext.AddNoNewPrivileges) does.
func TestSecurityContextNoNewPrivs(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   *corev1.SecurityContext
		want bool
	}{
		{"no security context", nil, false},
		{"unset", &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)}, false},
		{"true", &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true)}, false},
		{"false", &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", SecurityContext: tc.sc}}}}
			if got := securityContext(p, &p.Spec.Containers[0]).GetNoNewPrivs(); got != tc.want {
				t.Fatalf("NoNewPrivs = %v, want %v", got, tc.want)
			}
		})
	}
}
