package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// benchSetYAML is a StatefulSet of n pods running sleep, each with a
// claim of class; policy is OrderedReady or Parallel.
func benchSetYAML(name string, n int, policy, class string) string {
	cls := ""
	if class != "" {
		cls = "\n      storageClassName: " + class
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: %s
spec:
  serviceName: %s
  replicas: %d
  podManagementPolicy: %s
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sleep", "100000"]
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:%s
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
`, name, name, n, policy, name, name, busybox, cls)
}

// setReadyAfter applies manifest and returns how long until the set
// reports n ready replicas.
func setReadyAfter(b *testing.B, c *framework.Cluster, k framework.Kubectl, name, manifest string, n int32) time.Duration {
	b.Helper()
	t0 := time.Now()
	k.MustIn(b, c, manifest, "apply", "-f", "-")
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		s, err := c.Client().AppsV1().StatefulSets("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && s.Status.ReadyReplicas == n {
			return time.Since(t0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("statefulset %s not Ready in 5m", name)
	return 0
}

// BenchmarkStatefulSetOrderedReady: a 10-replica OrderedReady set with a
// claim per pod on the default local-path class, on the real node, from
// `kubectl apply` until all ten are Ready (each pod waits for the one
// before it):
//
//	SKIFF_BIN=$PWD/bin/skiff go test ./test/e2e -run '^$' -bench StatefulSetOrderedReady -benchtime 3x
func BenchmarkStatefulSetOrderedReady(b *testing.B) {
	c := nodeCluster(b)
	k := framework.Kubectls(b)[len(framework.Kubectls(b))-1]
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		name := fmt.Sprintf("ordered-%d", i)
		d := setReadyAfter(b, c, k, name, benchSetYAML(name, 10, "OrderedReady", ""), 10)
		total += d
	}
	b.ReportMetric(ms(total)/float64(b.N), "apply-to-10-ready-ms")
	b.ReportMetric(ms(total)/float64(b.N)/10, "ms-per-pod")
}

// BenchmarkStatefulSetParallelSimulated: a 50-replica Parallel set with
// a claim per pod, bound to 50 static PVs, on 10 simulated nodes (stand-in
// kubelets mark bound pods Running and Ready), from `kubectl apply`
// until all fifty are Ready:
//
//	SKIFF_BIN=$PWD/bin/skiff go test ./test/e2e -run '^$' -bench StatefulSetParallelSimulated -benchtime 3x
func BenchmarkStatefulSetParallelSimulated(b *testing.B) {
	c := framework.StartCluster(b, framework.Options{})
	k := framework.Kubectls(b)[len(framework.Kubectls(b))-1]
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	framework.CreateSimulatedNodes(b, c.Client(), "sim", 10, nil)
	framework.RunStandInKubelets(ctx, c.Client())
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		b.StopTimer()
		name := fmt.Sprintf("parallel-%d", i)
		var pvs strings.Builder
		for j := range 50 {
			fmt.Fprintf(&pvs, "---\n%s", strings.Replace(pvYAML(fmt.Sprintf("%s-pv-%d", name, j), fmt.Sprintf("/tmp/skiff-bench-unused/%d", j), "Retain"), "storageClassName: manual", "storageClassName: "+name, 1))
		}
		k.MustIn(b, c, pvs.String(), "apply", "-f", "-")
		b.StartTimer()
		d := setReadyAfter(b, c, k, name, benchSetYAML(name, 50, "Parallel", name), 50)
		total += d
	}
	b.ReportMetric(ms(total)/float64(b.N), "apply-to-50-ready-ms")
}
