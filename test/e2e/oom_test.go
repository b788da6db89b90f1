package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestOOMKilledChildMakesContainerOOMKilled runs a shell whose child (tail
// reading /dev/zero, buffering an endless line) is OOM-killed under the container's memory
// limit while the shell survives and exits by itself with 3. As on
// containerd, the container reports reason OOMKilled with the shell's own
// exit code.
func TestOOMKilledChildMakesContainerOOMKilled(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[0]
	limit := "    resources:\n      limits:\n        memory: 32Mi\n"
	// The shell prints tail's status so a failure shows whether the child
	// was killed at all (137 is SIGKILL). No pipe: a writer filling a pipe
	// after tail's kill charges the cgroup again before tail's memory is
	// freed, and the second OOM kill picks the shell.
	k.MustIn(t, c, podYAML("oom-child", busybox, "Never", limit, "sh", "-c",
		"tail /dev/zero > /dev/null; echo tail=$?; sleep 1; exit 3"), "create", "-f", "-")
	p := waitPod(t, c, "oom-child", 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	term := p.Status.ContainerStatuses[0].State.Terminated
	logs := k.Run(c, "", nil, "logs", "oom-child").Stdout
	if !strings.Contains(logs, "tail=137") {
		t.Fatalf("the child was not OOM-killed; container output: %q", logs)
	}
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 3 {
		t.Fatalf("container whose child was OOM-killed: %+v, want reason OOMKilled and exit code 3", p.Status.ContainerStatuses[0].State)
	}
	if out := k.Must(t, c, "get", "pod", "oom-child"); !strings.Contains(out, "OOMKilled") {
		t.Fatalf("get pod:\n%s", out)
	}

	// A container without a limit that fails by itself is still an Error.
	k.MustIn(t, c, podYAML("plain-error", busybox, "Never", "", "sh", "-c", "exit 3"), "create", "-f", "-")
	p = waitPod(t, c, "plain-error", 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.Reason != "Error" || term.ExitCode != 3 {
		t.Fatalf("container exiting 3 by itself: %+v, want reason Error", p.Status.ContainerStatuses[0].State)
	}
}
