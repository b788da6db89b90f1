package sysctl

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/utils/ptr"
)

func pod(host bool, names ...string) *corev1.Pod {
	p := &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: host, HostIPC: host, SecurityContext: &corev1.PodSecurityContext{}}}
	for _, n := range names {
		p.Spec.SecurityContext.Sysctls = append(p.Spec.SecurityContext.Sysctls, corev1.Sysctl{Name: n, Value: "1"})
	}
	return p
}

func TestAdmit(t *testing.T) {
	w, err := NewAllowlist(append(Safe(version.MustParseGeneric("6.1")), "kernel.msg*", "net.core.somaxconn"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"none", &corev1.Pod{}, ""},
		{"safe", pod(false, "kernel.shm_rmid_forced", "net.ipv4.tcp_rmem"), ""},
		{"slashes", pod(false, "kernel/shm_rmid_forced"), ""},
		{"allowed prefix", pod(false, "kernel.msgmax"), ""},
		{"allowed name", pod(false, "net.core.somaxconn"), ""},
		{"unsafe", pod(false, "kernel.shmmax"), `forbidden sysctl: "kernel.shmmax" not allowlisted`},
		{"host network", pod(true, "net.core.somaxconn"), `forbidden sysctl: "net.core.somaxconn" not allowed with host Net enabled`},
		{"host ipc", pod(true, "kernel.shm_rmid_forced"), `forbidden sysctl: "kernel.shm_rmid_forced" not allowed with host IPC enabled`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := w.Admit(tc.pod); got != tc.want {
				t.Fatalf("Admit = %q, want %q", got, tc.want)
			}
		})
	}
}

// The upstream conformance spec's unsafe sysctl is forbidden by default.
func TestDefaultForbidsUnsafe(t *testing.T) {
	w, err := NewAllowlist(Safe(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Admit(pod(false, "kernel.msgmax")); !strings.Contains(got, "not allowlisted") {
		t.Fatalf("Admit = %q", got)
	}
	p := pod(false, "net.ipv4.tcp_rmem")
	p.Spec.HostUsers = ptr.To(false)
	if got := w.Admit(p); got == "" {
		t.Fatal("net.ipv4.tcp_rmem allowed on an unknown kernel")
	}
}

func TestNewAllowlistRejects(t *testing.T) {
	for _, p := range []string{"vm.swappiness", "kernel.*", "foo-", "kernel..msgmax"} {
		if _, err := NewAllowlist([]string{p}); err == nil {
			t.Errorf("NewAllowlist(%q) accepted", p)
		}
	}
}

func TestSafeDependsOnKernel(t *testing.T) {
	old := Safe(version.MustParseGeneric("4.4"))
	if slices.Contains(old, "net.ipv4.tcp_keepalive_time") || !slices.Contains(old, "net.ipv4.ip_local_reserved_ports") {
		t.Fatalf("4.4: %v", old)
	}
	if got := Safe(version.MustParseGeneric("5.10")); len(got) != len(safeSysctls) {
		t.Fatalf("5.10: %v", got)
	}
}

func TestSysctlsNormalized(t *testing.T) {
	got := Sysctls(pod(false, "kernel/shm_rmid_forced", "net/ipv4/conf/eno2.100/rp_filter"))
	if got["kernel.shm_rmid_forced"] != "1" || got["net.ipv4.conf.eno2/100.rp_filter"] != "1" || len(got) != 2 {
		t.Fatalf("Sysctls = %v", got)
	}
}
