package pod_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/pod"
	"github.com/skiff/skiff/pkg/server/servertest"
)

func TestSecurityContextValidation(t *testing.T) {
	cases := []struct {
		name   string
		mut    func(*corev1.Pod)
		want   []string
		reject []string
	}{
		{"privileged without escalation", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)}
		}, []string{"spec.containers[0].securityContext: Invalid value", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"}, nil},
		{"sys_admin without escalation", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"CAP_SYS_ADMIN"}}}
		}, []string{"cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"}, nil},
		{"no escalation", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), RunAsUser: ptr.To[int64](1000)}
		}, nil, nil},
		// The conformance spec "should reject invalid sysctls": only the
		// malformed names are errors; unsafe ones are the kubelet's call.
		{"malformed sysctls", func(p *corev1.Pod) {
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "foo-", Value: "bar"}, {Name: "kernel.shmmax", Value: "100000000"},
				{Name: "safe-and-unsafe", Value: "100000000"}, {Name: "bar..", Value: "42"}}
		}, []string{`spec.securityContext.sysctls[0].name: Invalid value: "foo-"`, `spec.securityContext.sysctls[3].name: Invalid value: "bar.."`},
			[]string{"safe-and-unsafe", "kernel.shmmax"}},
		{"duplicate sysctl", func(p *corev1.Pod) {
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}, {Name: "kernel.shm_rmid_forced", Value: "0"}}
		}, []string{`spec.securityContext.sysctls[1].name: Duplicate value: "kernel.shm_rmid_forced"`}, nil},
		{"empty sysctl name", func(p *corev1.Pod) { p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Value: "1"}} },
			[]string{"spec.securityContext.sysctls[0].name: Required value"}, nil},
		{"slashes", func(p *corev1.Pod) {
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "kernel/shm_rmid_forced", Value: "1"}, {Name: "net.ipv4.conf.eno2/100.rp_filter", Value: "1"}}
		}, nil, nil},
		{"net sysctl with host network", func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "net.ipv4.ip_local_port_range", Value: "1024 65535"}}
		}, []string{`spec.securityContext.sysctls[0].name: Invalid value: "net.ipv4.ip_local_port_range": may not be specified when 'hostNetwork' is true`}, nil},
		{"ipc sysctl with host ipc", func(p *corev1.Pod) {
			p.Spec.HostIPC = true
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}}
		}, []string{"may not be specified when 'hostIPC' is true"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := basic("p")
			pod.DefaultPod(p)
			tc.mut(p)
			got := pod.ValidatePodSpec(&p.Spec, field.NewPath("spec")).ToAggregate()
			if len(tc.want) == 0 && got != nil {
				t.Fatalf("unexpected errors: %v", got)
			}
			for _, w := range tc.want {
				if got == nil || !strings.Contains(got.Error(), w) {
					t.Errorf("errors %v lack %q", got, w)
				}
			}
			for _, r := range tc.reject {
				if got != nil && strings.Contains(got.Error(), r) {
					t.Errorf("errors %v mention %q", got, r)
				}
			}
		})
	}
}

// An invalid sysctl is a 422 Invalid Status naming the field, as kubectl
// and client-go expect.
func TestInvalidSysctlIsUnprocessableEntity(t *testing.T) {
	s := servertest.Start(t)
	p := basic("sysctl")
	p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "foo-", Value: "bar"}}}
	_, err := s.Client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("create: %v, want Invalid", err)
	}
	st := err.(apierrors.APIStatus).Status()
	if st.Code != 422 || st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "spec.securityContext.sysctls[0].name" {
		t.Fatalf("status %+v", st)
	}
}
