package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/test/e2e/framework"
)

// startWorker runs `skiff agent` as node name with busybox imported.
func startWorker(t *testing.T, c *framework.Cluster, dir, name string) *framework.Process {
	t.Helper()
	drop := agent.ImagesDropDir(filepath.Join(dir, "agent"))
	if err := os.MkdirAll(drop, 0o700); err != nil {
		t.Fatal(err)
	}
	framework.SaveImage(t, framework.BusyboxImage(t), busybox, filepath.Join(drop, "busybox.tar"))
	return framework.StartProcess(t, "agent", "--server", c.URL(), "--token", c.Token(t), "--data-dir", dir, "--node-name", name, "--cleanup-on-exit")
}

// spreadDeployment is Deployment "web" (app=web) of replicas pods spread
// over the nodes (ScheduleAnyway, so a lost node's pods land elsewhere),
// with container as its one container (YAML at the list item's indent).
func spreadDeployment(replicas int, container string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}
      containers:
      %s
`, replicas, container)
}

func nodeCondition(n *corev1.Node, typ corev1.NodeConditionType) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return corev1.NodeCondition{}
}

// readyEndpoints lists the ready addresses of a Service's EndpointSlices.
func readyEndpoints(t *testing.T, c *framework.Cluster, svc string) []string {
	t.Helper()
	slices, err := c.Client().DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + svc})
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				out = append(out, e.Addresses...)
			}
		}
	}
	return out
}

// podProcesses lists the processes in the cgroups of the pods with
// these UIDs (the runtime names a pod's cgroup pod<UID>).
func podProcesses(uids []string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cgroup, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil || !slices.ContainsFunc(uids, func(uid string) bool { return strings.Contains(string(cgroup), "pod"+uid) }) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return out
}

// TestNodeJoinDeleteAndRejoin: a DaemonSet gets a pod on a node that
// joins the running cluster within seconds; `kubectl delete node`
// removes the node, and the pod GC its pods; the agent restarted on its
// data dir registers the node again and the DaemonSet follows.
func TestNodeJoinDeleteAndRejoin(t *testing.T) {
	c := nodeClusterWith(t, nil)
	cs := c.Client()
	ctx := context.Background()
	k := framework.Kubectls(t)[0]
	k.MustIn(t, c, `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: `+busybox+`, command: [sh, -c, "sleep 3600"]}
`, "apply", "-f", "-")
	daemonOn := func(node string) bool {
		for _, p := range podsLabelled(t, c, "agent") {
			if p.Spec.NodeName == node && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				return true
			}
		}
		return false
	}
	framework.Eventually(t, 30*time.Second, "daemon pod on the server's node", func() bool { return daemonOn(framework.NodeName) })
	dir := t.TempDir()
	worker := startWorker(t, c, dir, "worker-1")
	joined := time.Now()
	framework.Eventually(t, 30*time.Second, "daemon pod Running on the joined node", func() bool { return daemonOn("worker-1") })
	t.Logf("daemon pod Running %v after the agent started", time.Since(joined).Round(100*time.Millisecond))
	// A bare pod bound to the node: only the pod GC removes it once the
	// node is gone (after its quarantine).
	pinned := podYAML("pinned", busybox, "Always", "", "sleep", "3600")
	k.MustIn(t, c, strings.Replace(pinned, "nodeName: "+framework.NodeName, "nodeName: worker-1", 1), "create", "-f", "-")
	framework.Eventually(t, 30*time.Second, "pinned pod Running", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "pinned", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	var uids []string
	for _, p := range podsOnNode(t, c, "worker-1") {
		uids = append(uids, string(p.UID))
	}

	k.Must(t, c, "delete", "node", "worker-1")
	deleted := time.Now()
	framework.Eventually(t, 90*time.Second, "the deleted node's pods collected", func() bool { return len(podsOnNode(t, c, "worker-1")) == 0 })
	t.Logf("pods of the deleted node collected %v after its deletion", time.Since(deleted).Round(100*time.Millisecond))
	framework.Eventually(t, 20*time.Second, "their containers stopped", func() bool { return len(podProcesses(uids)) == 0 })
	if _, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "worker-1", metav1.GetOptions{}); err == nil {
		framework.Eventually(t, 20*time.Second, "the node's Lease collected", func() bool {
			_, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "worker-1", metav1.GetOptions{})
			return err != nil
		})
	}

	worker.Stop()
	startWorker(t, c, dir, "worker-1")
	framework.Eventually(t, 30*time.Second, "the node registered again, with a pod range", func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
		return err == nil && nodeReady(n) && n.Spec.PodCIDR != ""
	})
	framework.Eventually(t, 30*time.Second, "daemon pod on the rejoined node", func() bool { return daemonOn("worker-1") })
}

func podsOnNode(t *testing.T, c *framework.Cluster, node string) []corev1.Pod {
	t.Helper()
	pods, err := c.Client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}
