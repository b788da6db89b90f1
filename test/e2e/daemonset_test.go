package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// daemonPods maps node name to the names of the live pods of app=agent
// bound there.
func daemonPods(t *testing.T, c *framework.Cluster) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range podsLabelled(t, c, "agent") {
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p.Name)
	}
	return out
}

// TestDaemonSetOnePodPerEligibleNode runs a DaemonSet over simulated nodes:
// one pod per matching node, following labels, taints and deletions, and
// a rolling update of its template.
func TestDaemonSetOnePodPerEligibleNode(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	framework.CreateSimulatedNodes(t, c.Client(), "sim", 3, func(i int) map[string]string {
		if i < 2 {
			return map[string]string{"role": "worker"}
		}
		return nil
	})
	k.MustIn(t, c, `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  updateStrategy:
    rollingUpdate:
      maxUnavailable: 3
  template:
    metadata:
      labels:
        app: agent
    spec:
      nodeSelector:
        role: worker
      terminationGracePeriodSeconds: 0
      containers:
      - name: main
        image: registry.local/agent:v1
`, "create", "-f", "-")
	onNodes := func(want ...string) func() bool {
		return func() bool {
			got := daemonPods(t, c)
			if len(got) != len(want) {
				return false
			}
			for _, n := range want {
				if len(got[n]) != 1 {
					return false
				}
			}
			return true
		}
	}
	framework.Eventually(t, 15*time.Second, "a pod on each worker", onNodes("sim-0", "sim-1"))
	framework.Eventually(t, 10*time.Second, "status", func() bool {
		out := k.Run(c, "", nil, "get", "ds", "agent").Stdout
		return strings.Contains(out, "agent   2         2")
	})
	// A node that becomes eligible gets a pod; one that stops loses it.
	k.Must(t, c, "label", "node", "sim-2", "role=worker")
	framework.Eventually(t, 15*time.Second, "pod on the relabelled node", onNodes("sim-0", "sim-1", "sim-2"))
	k.Must(t, c, "label", "node", "sim-0", "role-")
	framework.Eventually(t, 15*time.Second, "pod gone from the unlabelled node", onNodes("sim-1", "sim-2"))
	// A deleted pod comes back; a NoExecute taint evicts, NoSchedule does not.
	victim := daemonPods(t, c)["sim-1"][0]
	k.Must(t, c, "delete", "pod", victim, "--grace-period=0", "--force")
	framework.Eventually(t, 15*time.Second, "pod recreated", func() bool {
		ps := daemonPods(t, c)["sim-1"]
		return len(ps) == 1 && ps[0] != victim
	})
	k.Must(t, c, "taint", "node", "sim-1", "maintenance=soon:NoSchedule")
	time.Sleep(2 * time.Second)
	if !onNodes("sim-1", "sim-2")() {
		t.Fatalf("a NoSchedule taint evicted a daemon pod: %v", daemonPods(t, c))
	}
	k.Must(t, c, "taint", "node", "sim-2", "maintenance=now:NoExecute")
	framework.Eventually(t, 15*time.Second, "pod evicted by NoExecute", onNodes("sim-1"))
	// A template change rolls out (on nodes where pods may start).
	k.Must(t, c, "taint", "node", "sim-1", "maintenance-")
	k.Must(t, c, "set", "image", "ds/agent", "main=registry.local/agent:v2")
	framework.Eventually(t, 15*time.Second, "rolled out", func() bool {
		for _, p := range podsLabelled(t, c, "agent") {
			if p.Spec.Containers[0].Image != "registry.local/agent:v2" {
				return false
			}
		}
		return onNodes("sim-1")()
	})
	// Each template is a revision; undo goes back to the previous one.
	if hist := k.Must(t, c, "rollout", "history", "ds/agent"); !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") {
		t.Fatalf("rollout history ds/agent:\n%s", hist)
	}
	k.Must(t, c, "rollout", "undo", "ds/agent")
	framework.Eventually(t, 15*time.Second, "rolled back to v1", func() bool {
		for _, p := range podsLabelled(t, c, "agent") {
			if p.Spec.Containers[0].Image != "registry.local/agent:v1" {
				return false
			}
		}
		return onNodes("sim-1")()
	})
	if hist := k.Must(t, c, "rollout", "history", "ds/agent"); !strings.Contains(hist, "2 ") || !strings.Contains(hist, "3 ") || strings.Contains(hist, "\n1 ") {
		t.Fatalf("rollout history ds/agent after undo (v1 renumbered 3):\n%s", hist)
	}
	ds, err := c.Client().AppsV1().DaemonSets("default").Get(context.Background(), "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 10*time.Second, "status counts", func() bool {
		ds, err = c.Client().AppsV1().DaemonSets("default").Get(context.Background(), "agent", metav1.GetOptions{})
		return err == nil && ds.Status.DesiredNumberScheduled == 1 && ds.Status.CurrentNumberScheduled == 1 && ds.Status.UpdatedNumberScheduled == 1
	})
	for _, p := range podsLabelled(t, c, "agent") {
		hasToleration := false
		for _, tol := range p.Spec.Tolerations {
			if tol.Key == corev1.TaintNodeUnschedulable {
				hasToleration = true
			}
		}
		if !hasToleration {
			t.Fatalf("daemon pod without the unschedulable toleration: %+v", p.Spec.Tolerations)
		}
	}
}

// TestBookControllersOnARealNode follows the book on a node that runs
// containers: an RC of three kubia pods keeps them running and replaces a
// deleted one, and the ssd-monitor DaemonSet runs on the node only while
// it is labelled disk=ssd.
func TestBookControllersOnARealNode(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, `apiVersion: v1
kind: ReplicationController
metadata:
  name: kubia
spec:
  replicas: 3
  selector:
    app: kubia
  template:
    metadata:
      labels:
        app: kubia
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: kubia
        image: `+busybox+`
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
`, "create", "-f", "-")
	runningKubia := func() []corev1.Pod {
		var out []corev1.Pod
		for _, p := range podsLabelled(t, c, "kubia") {
			if p.Status.Phase == corev1.PodRunning {
				out = append(out, p)
			}
		}
		return out
	}
	framework.Eventually(t, 30*time.Second, "3 kubia pods running", func() bool {
		return len(runningKubia()) == 3 && strings.Contains(k.Run(c, "", nil, "get", "rc", "kubia").Stdout, "kubia   3         3         3")
	})
	victim := runningKubia()[0].Name
	k.Must(t, c, "delete", "pod", victim)
	framework.Eventually(t, 30*time.Second, "replacement running", func() bool {
		ps := runningKubia()
		for _, p := range ps {
			if p.Name == victim {
				return false
			}
		}
		return len(ps) == 3
	})
	k.Must(t, c, "scale", "rc", "kubia", "--replicas=1")
	framework.Eventually(t, 30*time.Second, "scaled down to 1", func() bool { return len(podsLabelled(t, c, "kubia")) == 1 })

	k.MustIn(t, c, `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ssd-monitor
spec:
  selector:
    matchLabels:
      app: ssd-monitor
  template:
    metadata:
      labels:
        app: ssd-monitor
    spec:
      nodeSelector:
        disk: ssd
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: `+busybox+`
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
`, "create", "-f", "-")
	time.Sleep(time.Second)
	if out := k.Must(t, c, "get", "ds", "ssd-monitor", "-o", "jsonpath={.status.desiredNumberScheduled}"); out != "0" {
		t.Fatalf("desired %s before the node is labelled", out)
	}
	k.Must(t, c, "label", "node", framework.NodeName, "disk=ssd")
	framework.Eventually(t, 30*time.Second, "ssd-monitor running on the node", func() bool {
		ps := podsLabelled(t, c, "ssd-monitor")
		return len(ps) == 1 && ps[0].Status.Phase == corev1.PodRunning && ps[0].Spec.NodeName == framework.NodeName
	})
	if out := k.Must(t, c, "rollout", "status", "ds/ssd-monitor", "--timeout=30s"); !strings.Contains(out, "successfully rolled out") {
		t.Errorf("rollout status ds/ssd-monitor: %s", out)
	}
	k.Must(t, c, "label", "node", framework.NodeName, "disk=hdd", "--overwrite")
	framework.Eventually(t, 30*time.Second, "ssd-monitor gone", func() bool {
		l, err := c.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=ssd-monitor"})
		return err == nil && len(l.Items) == 0
	})
}
