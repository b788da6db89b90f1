package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestSecurityContextNoNewPrivsAndSysctls checks, on a real node, what the
// AllowPrivilegeEscalation and Sysctls conformance specs check:
// allowPrivilegeEscalation=false sets no_new_privs (unset leaves it
// off); a pod's safe sysctl is set in its own namespaces; an unsafe one
// fails the pod with SysctlForbidden; a malformed one is a 422 naming the
// field.
func TestSecurityContextNoNewPrivsAndSysctls(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	finished := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	k.MustIn(t, c, podYAML("nnp", busybox, "Never", "    securityContext:\n      allowPrivilegeEscalation: false\n",
		"grep", "NoNewPrivs", "/proc/self/status"), "create", "-f", "-")
	k.MustIn(t, c, podYAML("escalating", busybox, "Never", "", "grep", "NoNewPrivs", "/proc/self/status"), "create", "-f", "-")
	sysctlPod := func(name, sysctl string) string {
		return strings.Replace(podYAML(name, busybox, "Never", "", "cat", "/proc/sys/kernel/shm_rmid_forced"),
			"  containers:", "  securityContext:\n    sysctls:\n    - {name: "+sysctl+", value: \"1\"}\n  containers:", 1)
	}
	k.MustIn(t, c, sysctlPod("safe-sysctl", "kernel.shm_rmid_forced"), "create", "-f", "-")
	k.MustIn(t, c, sysctlPod("unsafe-sysctl", "kernel.msgmax"), "create", "-f", "-")

	for name, want := range map[string]string{"nnp": "NoNewPrivs:\t1", "escalating": "NoNewPrivs:\t0", "safe-sysctl": "1"} {
		p := waitPod(t, c, name, 60*time.Second, "finished", finished)
		if out := strings.TrimSpace(k.Must(t, c, "logs", name)); p.Status.Phase != corev1.PodSucceeded || out != want {
			t.Errorf("%s: phase %s, output %q, want %q", name, p.Status.Phase, out, want)
		}
	}
	p := waitPod(t, c, "unsafe-sysctl", 30*time.Second, "rejected", finished)
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "SysctlForbidden" || !strings.Contains(p.Status.Message, "kernel.msgmax") {
		t.Errorf("unsafe sysctl: phase %s reason %q message %q, want Failed SysctlForbidden", p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
	r := k.Run(c, sysctlPod("bad-sysctl", "foo-"), nil, "create", "-f", "-")
	if r.Err == nil || !strings.Contains(r.Stderr, "spec.securityContext.sysctls[0].name") || !strings.Contains(r.Stderr, "is invalid") {
		t.Errorf("malformed sysctl: err %v, stderr %q", r.Err, r.Stderr)
	}
}
