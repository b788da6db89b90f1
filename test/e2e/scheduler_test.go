package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

func pendingPodYAML(name, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels:
    app: %s
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: registry.local/none:v1
%s`, name, strings.SplitN(name, "-", 2)[0], extra)
}

func nodeOf(t *testing.T, c *framework.Cluster, name string) string {
	t.Helper()
	p, err := c.Client().CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Spec.NodeName
}

// TestSchedulerPlacesPods drives the scheduler with kubectl against
// simulated nodes (API objects only; the control plane runs no agent).
func TestSchedulerPlacesPods(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	framework.CreateSimulatedNodes(t, c.Client(), "sim", 3, nil)

	// An impossible nodeSelector: Pending with upstream's explanation,
	// then scheduled at once when a node gets the label.
	k.MustIn(t, c, pendingPodYAML("picky", "  nodeSelector:\n    disk: ssd\n"), "create", "-f", "-")
	framework.Eventually(t, 10*time.Second, "FailedScheduling in describe", func() bool {
		out := k.Run(c, "", nil, "describe", "pod", "picky").Stdout
		return strings.Contains(out, "FailedScheduling") && strings.Contains(out, "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")
	})
	if out := k.Must(t, c, "get", "pod", "picky"); !strings.Contains(out, "Pending") {
		t.Fatalf("get pod:\n%s", out)
	}
	time.Sleep(1500 * time.Millisecond) // past the pod's back-off
	k.Must(t, c, "label", "node", "sim-1", "disk=ssd")
	labelled := time.Now()
	framework.Eventually(t, 5*time.Second, "picky scheduled", func() bool { return nodeOf(t, c, "picky") != "" })
	if d := time.Since(labelled); d > time.Second {
		t.Errorf("scheduled %v after the label; want within a second", d)
	}
	if n := nodeOf(t, c, "picky"); n != "sim-1" {
		t.Fatalf("picky on %s, want sim-1", n)
	}
	if out := k.Must(t, c, "describe", "pod", "picky"); !strings.Contains(out, "Successfully assigned default/picky to sim-1") {
		t.Fatalf("describe:\n%s", out)
	}

	// A cordoned node gets no new pods.
	k.Must(t, c, "cordon", "sim-0")
	for i := range 6 {
		k.MustIn(t, c, pendingPodYAML(fmt.Sprintf("spread-%d", i), ""), "create", "-f", "-")
	}
	for i := range 6 {
		name := fmt.Sprintf("spread-%d", i)
		framework.Eventually(t, 10*time.Second, name+" scheduled", func() bool { return nodeOf(t, c, name) != "" })
		if n := nodeOf(t, c, name); n == "sim-0" {
			t.Fatalf("%s landed on the cordoned node", name)
		}
	}
	k.Must(t, c, "uncordon", "sim-0")

	// podAffinity: together; podAntiAffinity: apart (hostname topology).
	affinity := func(kind, app string) string {
		return fmt.Sprintf(`  affinity:
    %s:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector:
          matchLabels:
            app: %s
        topologyKey: kubernetes.io/hostname
`, kind, app)
	}
	k.MustIn(t, c, pendingPodYAML("db-0", ""), "create", "-f", "-")
	framework.Eventually(t, 10*time.Second, "db-0 scheduled", func() bool { return nodeOf(t, c, "db-0") != "" })
	k.MustIn(t, c, pendingPodYAML("cache-0", affinity("podAffinity", "db")), "create", "-f", "-")
	framework.Eventually(t, 10*time.Second, "cache-0 scheduled", func() bool { return nodeOf(t, c, "cache-0") != "" })
	if a, b := nodeOf(t, c, "db-0"), nodeOf(t, c, "cache-0"); a != b {
		t.Fatalf("podAffinity: db-0 on %s, cache-0 on %s", a, b)
	}
	seen := map[string]bool{}
	for i := range 3 {
		name := fmt.Sprintf("web-%d", i)
		k.MustIn(t, c, pendingPodYAML(name, affinity("podAntiAffinity", "web")), "create", "-f", "-")
		framework.Eventually(t, 10*time.Second, name+" scheduled", func() bool { return nodeOf(t, c, name) != "" })
		n := nodeOf(t, c, name)
		if seen[n] {
			t.Fatalf("podAntiAffinity: two web pods on %s", n)
		}
		seen[n] = true
	}
	// A fourth has nowhere to go.
	k.MustIn(t, c, pendingPodYAML("web-3", affinity("podAntiAffinity", "web")), "create", "-f", "-")
	framework.Eventually(t, 10*time.Second, "web-3 FailedScheduling", func() bool {
		return strings.Contains(k.Run(c, "", nil, "describe", "pod", "web-3").Stdout, "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")
	})
	p, _ := c.Client().CoreV1().Pods("default").Get(context.Background(), "web-3", metav1.GetOptions{})
	if cond := podCondition(p, corev1.PodScheduled); cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable {
		t.Fatalf("PodScheduled condition: %+v", cond)
	}
	// Deleting one web pod makes room for it.
	k.Must(t, c, "delete", "pod", "web-0", "--grace-period=0", "--force")
	framework.Eventually(t, 15*time.Second, "web-3 scheduled after web-0 left", func() bool { return nodeOf(t, c, "web-3") != "" })
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// TestSchedulerWithHundredsOfSimulatedNodes schedules 1,500 pods onto 300
// simulated nodes of three sizes and checks no node is over-committed and
// every anti-affinity group is spread one pod per node.
func TestSchedulerWithHundredsOfSimulatedNodes(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	cs := c.Client()
	ctx := context.Background()
	sizes := []string{"2", "4", "8"}
	var names []string
	for i := range 300 {
		n := framework.SimulatedNode(fmt.Sprintf("sim-%03d", i), map[string]string{corev1.LabelTopologyZone: fmt.Sprintf("z%d", i%3)}, sizes[i%3], "16Gi", 110)
		if err := framework.CreateNode(ctx, cs, n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n.Name)
	}
	framework.KeepNodesAlive(t, cs, names...)
	const pods = 1500
	for i := range pods {
		group := fmt.Sprintf("g%d", i%50)
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%04d", i), Labels: map[string]string{"group": group}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/none:v1",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}},
		}
		if i%2 == 0 {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}}, TopologyKey: corev1.LabelHostname,
			}}}}
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var list *corev1.PodList
	framework.Eventually(t, 60*time.Second, "all pods bound", func() bool {
		var err error
		list, err = cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, p := range list.Items {
			if p.Spec.NodeName == "" {
				return false
			}
		}
		return len(list.Items) == pods
	})
	milli := map[string]int64{}
	groupNodes := map[string]bool{}
	for _, p := range list.Items {
		milli[p.Spec.NodeName] += 500
		if p.Spec.Affinity != nil {
			key := p.Labels["group"] + "@" + p.Spec.NodeName
			if groupNodes[key] {
				t.Fatalf("two anti-affine pods of %s on %s", p.Labels["group"], p.Spec.NodeName)
			}
			groupNodes[key] = true
		}
	}
	for i := range 300 {
		name := fmt.Sprintf("sim-%03d", i)
		capacity := resource.MustParse(sizes[i%3])
		if milli[name] > capacity.MilliValue() {
			t.Fatalf("%s over-committed: %dm of %dm", name, milli[name], capacity.MilliValue())
		}
	}
}
