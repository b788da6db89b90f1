package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestEmptyDirSharedBetweenContainers: one container writes a file into
// an emptyDir, the other serves it over HTTP.
func TestEmptyDirSharedBetweenContainers(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: writer
    image: %s
    command: ["sh", "-c", "while true; do date > /share/index.html; echo written >> /share/index.html; sleep 1; done"]
    volumeMounts: [{name: share, mountPath: /share}]
  - name: server
    image: %s
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    volumeMounts: [{name: share, mountPath: /www, readOnly: true}]
  volumes:
  - name: share
    emptyDir: {}
`, framework.NodeName, busybox, busybox), "create", "-f", "-")
	waitPod(t, c, "shared", 60*time.Second, "Running", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 2 &&
			p.Status.ContainerStatuses[0].Ready && p.Status.ContainerStatuses[1].Ready
	})
	framework.Eventually(t, 20*time.Second, "the server serves the writer's file", func() bool {
		r := k.Run(c, "", nil, "exec", "shared", "-c", "writer", "--", "timeout", "5", "wget", "-qO-", "http://127.0.0.1:8080/index.html")
		return r.Err == nil && strings.Contains(r.Stdout, "written")
	})
	if r := k.Run(c, "", nil, "exec", "shared", "-c", "server", "--", "touch", "/www/x"); r.Err == nil {
		t.Fatal("the read-only mount is writable")
	}
}

// TestEmptyDirSurvivesLivenessRestart: a container restarted by its
// failing liveness probe finds what it wrote into its emptyDir.
func TestEmptyDirSurvivesLivenessRestart(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	extra := `    livenessProbe:
      exec: {command: ["sh", "-c", "[ $(wc -l < /cache/runs) -ge 2 ]"]}
      periodSeconds: 1
      failureThreshold: 1
    volumeMounts: [{name: cache, mountPath: /cache}]
  volumes:
  - name: cache
    emptyDir: {}
`
	k.MustIn(t, c, podYAML("liveness", busybox, "Always", extra, "sh", "-c", "echo run >> /cache/runs; sleep 3600"), "create", "-f", "-")
	waitPod(t, c, "liveness", 90*time.Second, "restarted once and running", func(p *corev1.Pod) bool {
		return running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	if out := k.Must(t, c, "exec", "liveness", "--", "cat", "/cache/runs"); out != "run\nrun\n" {
		t.Fatalf("emptyDir after the restart holds %q", out)
	}
	time.Sleep(3 * time.Second)
	if p, _ := c.Client().CoreV1().Pods("default").Get(context.Background(), "liveness", metav1.GetOptions{}); p.Status.ContainerStatuses[0].RestartCount != 1 {
		t.Fatalf("restarted %d times: the second run's probe should pass", p.Status.ContainerStatuses[0].RestartCount)
	}
}
