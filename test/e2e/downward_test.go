package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestDownwardAPIDefaultLimits: a container without limits reads the
// node's allocatable cpu and memory as its limits, in env vars and in a
// downwardAPI volume, as on upstream (the conformance specs "should
// provide default limits.cpu/memory from node allocatable"); its first
// run already sees its pod and host IPs (status.podIP is set in the env
// before the API's status carries it).
func TestDownwardAPIDefaultLimits(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	extra := `    env:
    - name: CPU_LIMIT
      valueFrom:
        resourceFieldRef: {resource: limits.cpu}
    - name: MEMORY_LIMIT
      valueFrom:
        resourceFieldRef: {resource: limits.memory}
    - name: POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    - name: HOST_IP
      valueFrom:
        fieldRef: {fieldPath: status.hostIP}
    volumeMounts:
    - {name: podinfo, mountPath: /etc/podinfo}
  volumes:
  - name: podinfo
    downwardAPI:
      items:
      - path: cpu_limit
        resourceFieldRef: {containerName: main, resource: limits.cpu, divisor: 1m}
      - path: memory_limit
        resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}
`
	k.MustIn(t, c, podYAML("downward", busybox, "Never", extra, "sh", "-c",
		`echo "ips $POD_IP $HOST_IP"; echo "env $CPU_LIMIT $MEMORY_LIMIT"; echo "files $(cat /etc/podinfo/cpu_limit) $(cat /etc/podinfo/memory_limit)"`), "create", "-f", "-")
	p := waitPod(t, c, "downward", 60*time.Second, "finished", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod: %+v", p.Status.ContainerStatuses)
	}
	n, err := c.Client().CoreV1().Nodes().Get(context.Background(), framework.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cpu, mem := n.Status.Allocatable.Cpu(), n.Status.Allocatable.Memory()
	if cpu.IsZero() || mem.IsZero() {
		t.Fatalf("node allocatable %v", n.Status.Allocatable)
	}
	want := fmt.Sprintf("ips %s %s\nenv %d %d\nfiles %d %d\n", p.Status.PodIP, p.Status.HostIP,
		(cpu.MilliValue()+999)/1000, mem.Value(), cpu.MilliValue(), (mem.Value()+(1<<20)-1)/(1<<20))
	if out := k.Must(t, c, "logs", "downward"); out != want {
		t.Fatalf("logs:\n%s\nwant:\n%s", out, want)
	}
}
