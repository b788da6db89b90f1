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

func replicaSetYAML(kind, name string, replicas int) string {
	apiVersion, selector := "apps/v1", fmt.Sprintf("matchLabels:\n      app: %s", name)
	if kind == "ReplicationController" {
		apiVersion, selector = "v1", fmt.Sprintf("app: %s", name)
	}
	return fmt.Sprintf(`apiVersion: %s
kind: %s
metadata:
  name: %s
spec:
  replicas: %d
  selector:
    %s
  template:
    metadata:
      labels:
        app: %s
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: main
        image: registry.local/none:v1
`, apiVersion, kind, name, replicas, selector, name)
}

// ownedPods lists the pods with label app=app and whether each is
// controlled by something.
func podsLabelled(t *testing.T, c *framework.Cluster, app string) []corev1.Pod {
	t.Helper()
	l, err := c.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestReplicaSetsAndReplicationControllers drives both kinds with kubectl:
// replicas are kept, pods deleted or relabelled are replaced, orphans
// adopted, scale-down picks pods, and deletion cascades (or orphans).
func TestReplicaSetsAndReplicationControllers(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	framework.CreateSimulatedNodes(t, c.Client(), "sim", 2, nil)
	for _, tc := range []struct{ kind, name, short string }{{"ReplicaSet", "web", "rs"}, {"ReplicationController", "legacy", "rc"}} {
		k.MustIn(t, c, replicaSetYAML(tc.kind, tc.name, 3), "create", "-f", "-")
		framework.Eventually(t, 15*time.Second, tc.name+": 3 replicas", func() bool {
			return len(podsLabelled(t, c, tc.name)) == 3 && strings.Contains(k.Run(c, "", nil, "get", tc.short, tc.name).Stdout, " 3 ")
		})
		pods := podsLabelled(t, c, tc.name)
		for _, p := range pods {
			if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != tc.kind || ref.Name != tc.name {
				t.Fatalf("%s: pod %s controller %+v", tc.name, p.Name, ref)
			}
		}
		// A deleted pod is replaced.
		k.Must(t, c, "delete", "pod", pods[0].Name, "--grace-period=0", "--force")
		framework.Eventually(t, 15*time.Second, tc.name+": replacement", func() bool {
			ps := podsLabelled(t, c, tc.name)
			return len(ps) == 3 && ps[0].Name != pods[0].Name && ps[1].Name != pods[0].Name && ps[2].Name != pods[0].Name
		})
		// A relabelled pod is released and replaced.
		victim := podsLabelled(t, c, tc.name)[0].Name
		k.Must(t, c, "label", "pod", victim, "app=released", "--overwrite")
		framework.Eventually(t, 15*time.Second, tc.name+": relabelled pod released and replaced", func() bool {
			p, err := c.Client().CoreV1().Pods("default").Get(context.Background(), victim, metav1.GetOptions{})
			return err == nil && metav1.GetControllerOf(p) == nil && len(podsLabelled(t, c, tc.name)) == 3
		})
		k.Must(t, c, "delete", "pod", victim, "--grace-period=0", "--force")
		// Scale down.
		k.Must(t, c, "scale", tc.short, tc.name, "--replicas=1")
		framework.Eventually(t, 15*time.Second, tc.name+": scaled to 1", func() bool { return len(podsLabelled(t, c, tc.name)) == 1 })
	}
	// An orphan matching the selector is adopted (and, over the replica
	// count, one pod goes).
	k.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata:
  name: stray
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: registry.local/none:v1
`, "create", "-f", "-")
	framework.Eventually(t, 15*time.Second, "orphan adopted, back to 1 replica", func() bool {
		ps := podsLabelled(t, c, "web")
		return len(ps) == 1 && metav1.GetControllerOf(&ps[0]) != nil
	})
	out := k.Must(t, c, "describe", "rs", "web")
	if !strings.Contains(out, "SuccessfulCreate") || !strings.Contains(out, "SuccessfulDelete") {
		t.Fatalf("describe rs:\n%s", out)
	}
	// Deleting cascades; --cascade=orphan keeps the pods.
	k.Must(t, c, "delete", "rs", "web")
	framework.Eventually(t, 15*time.Second, "pods of the deleted rs gone", func() bool { return len(podsLabelled(t, c, "web")) == 0 })
	k.Must(t, c, "delete", "rc", "legacy", "--cascade=orphan")
	time.Sleep(2 * time.Second)
	ps := podsLabelled(t, c, "legacy")
	if len(ps) != 1 || metav1.GetControllerOf(&ps[0]) != nil {
		t.Fatalf("orphaned pods of the rc: %+v", ps)
	}
}

// TestReplicaSetScaleUpSurvivesServerKill kills the server (API server and
// controller manager) with SIGKILL in the middle of a scale-up: after the
// restart the ReplicaSet has exactly its replicas, no extra pod.
func TestReplicaSetScaleUpSurvivesServerKill(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, replicaSetYAML("ReplicaSet", "burst", 300), "create", "-f", "-")
	framework.Eventually(t, 30*time.Second, "scale-up under way", func() bool { return len(podsLabelled(t, c, "burst")) >= 20 })
	c.Kill()
	c.Restart()
	framework.Eventually(t, 60*time.Second, "300 pods", func() bool { return len(podsLabelled(t, c, "burst")) == 300 })
	for range 10 {
		time.Sleep(200 * time.Millisecond)
		if n := len(podsLabelled(t, c, "burst")); n != 300 {
			t.Fatalf("%d pods after converging, want exactly 300", n)
		}
	}
	framework.Eventually(t, 10*time.Second, "status.replicas 300", func() bool {
		return k.Must(t, c, "get", "rs", "burst", "-o", "jsonpath={.status.replicas}") == "300"
	})
}
