package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/test/e2e/framework"
)

// BenchmarkClaimPodStartup measures the time from starting `kubectl
// apply` of a claim (default local-path class, WaitForFirstConsumer) and
// a pod using it to the watch event that shows the pod Running: the
// scheduler picks the node, the provisioner makes the volume, the binder
// binds it, the kubelet mounts it and starts the container. 50 runs, one
// at a time:
//
//	SKIFF_BIN=$PWD/bin/skiff go test ./test/e2e -run '^$' -bench ClaimPodStartup -benchtime 1x
func BenchmarkClaimPodStartup(b *testing.B) {
	const runs = 50
	c := nodeCluster(b)
	k := framework.Kubectls(b)[len(framework.Kubectls(b))-1]
	ctx := context.Background()
	cs := c.Client()
	run := func(name string) (total, kubectl time.Duration) {
		w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		manifest := pvcYAML(name, "") + "---\n" + claimPodYAML(name, name, false, "sleep 3600")
		manifest = strings.Replace(manifest, "terminationGracePeriodSeconds: 1", "terminationGracePeriodSeconds: 0", 1)
		t0 := time.Now()
		k.MustIn(b, c, manifest, "apply", "-f", "-")
		kubectl = time.Since(t0)
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case ev := <-w.ResultChan():
				if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted && allRunning(p) {
					return time.Since(t0), kubectl
				}
			case <-timeout:
				b.Fatalf("%s not Running in 2m", name)
			}
		}
	}
	run("warm")
	b.ResetTimer()
	for range b.N {
		var totals, applies []time.Duration
		for i := range runs {
			total, apply := run(fmt.Sprintf("claim-%d", i))
			totals, applies = append(totals, total), append(applies, apply)
		}
		b.StopTimer()
		b.ReportMetric(ms(pct(totals, 0.5)), "apply-to-running-p50-ms")
		b.ReportMetric(ms(pct(totals, 0.99)), "apply-to-running-p99-ms")
		b.ReportMetric(ms(pct(applies, 0.5)), "kubectl-apply-p50-ms")
		b.StartTimer()
	}
}
