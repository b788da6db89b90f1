package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestStatefulSetSurvivesKills SIGKILLs skiff (API server, controller
// manager and all) at random moments of scale-ups, scale-downs and
// rolling updates of an OrderedReady set on simulated nodes, and checks
// that the set converges every time to its spec: the right ordinals,
// each once, all on the latest template. The seed is logged. (The
// ordering invariants under crashes are checked write by write by the
// controller's chaos unit test.)
func TestStatefulSetSurvivesKills(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	framework.CreateSimulatedNodes(t, c.Client(), "sim", 3, nil)
	framework.RunStandInKubelets(ctx, c.Client())
	k.MustIn(t, c, `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: chaos
spec:
  serviceName: chaos
  replicas: 3
  selector:
    matchLabels: {app: chaos}
  template:
    metadata:
      labels: {app: chaos}
    spec:
      containers:
      - {name: main, image: registry.local/chaos:v0}
`, "create", "-f", "-")
	replicas, image := 3, "registry.local/chaos:v0"
	for round := range 5 {
		if rng.IntN(2) == 0 {
			replicas = rng.IntN(6)
			k.Must(t, c, "scale", "sts/chaos", fmt.Sprintf("--replicas=%d", replicas))
		} else {
			image = fmt.Sprintf("registry.local/chaos:v%d", round+1)
			k.Must(t, c, "set", "image", "sts/chaos", "main="+image)
		}
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		c.Kill()
		c.Restart()
	}
	framework.Eventually(t, 90*time.Second, fmt.Sprintf("%d pods of %s", replicas, image), func() bool {
		l, err := c.Client().CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=chaos"})
		if err != nil || len(l.Items) != replicas {
			return false
		}
		seen := map[string]bool{}
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image || seen[p.Name] || !podReady(&p) {
				return false
			}
			seen[p.Name] = true
		}
		for i := range replicas {
			if !seen[fmt.Sprintf("chaos-%d", i)] {
				return false
			}
		}
		s, err := c.Client().AppsV1().StatefulSets("default").Get(ctx, "chaos", metav1.GetOptions{})
		return err == nil && s.Status.ReadyReplicas == int32(replicas) && s.Status.CurrentRevision == s.Status.UpdateRevision
	})
}
