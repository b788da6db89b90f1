package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestManyNodes runs a server and two agents made by `skiff cluster
// create`, each in its own network namespace: a 6-replica Deployment
// spreads over the three nodes and answers through its Service by name
// from every node. An agent killed (machine lost) goes Unknown within
// the grace period, its pods leave the endpoints and are replaced
// elsewhere after their toleration; started again it is Ready and its old
// containers are gone. A partition behaves the same, and after healing no
// pod runs twice. A StatefulSet's pod on the killed node is not made again
// until the node is declared out of service, then it is, with its claim.
// A node added to the running cluster gets a DaemonSet pod within seconds.
// `kubectl drain` moves a node's pods off while a
// PodDisruptionBudget keeps minAvailable of them Ready at every sample,
// and an eviction that would break a budget gets 429.
func TestManyNodes(t *testing.T) {
	l := framework.CreateLocalCluster(t, busybox, testServer, "--agents", "2",
		"--kube-controller-manager-arg", "node-monitor-grace-period=6s", "--kube-controller-manager-arg", "node-monitor-period=1s",
		"--kube-apiserver-arg", "default-unreachable-toleration-seconds=3", "--kube-apiserver-arg", "default-not-ready-toleration-seconds=3")
	c := l.Cluster
	defer func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", l.Logs(40))
		}
	}()
	cs := c.Client()
	ctx := context.Background()
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	server, agent0, agent1 := l.NodeName("server-0"), l.NodeName("agent-0"), l.NodeName("agent-1")
	for _, n := range []string{server, agent0, agent1} {
		node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil || !nodeReady(node) {
			t.Fatalf("node %s not Ready after create: %v", n, err)
		}
	}
	k.MustIn(t, c, spreadDeployment(6, "- {name: main, image: "+testServer+", readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}}")+fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: client}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: %s, command: [sleep, "3600"]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {kubernetes.io/hostname: %s}
      containers:
      - name: main
        image: %s
        command: [sh, -c, "[ -f /data/first ] || hostname > /data/first; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Mi}}}
`, busybox, l.NodeName("agent-0"), busybox), "apply", "-f", "-")
	webReady := func() map[string][]corev1.Pod {
		out := map[string][]corev1.Pod{}
		for _, p := range podsLabelled(t, c, "web") {
			if podReady(&p) && p.DeletionTimestamp == nil {
				out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p)
			}
		}
		return out
	}
	total := func(m map[string][]corev1.Pod) (n int) {
		for _, ps := range m {
			n += len(ps)
		}
		return n
	}
	framework.Eventually(t, 60*time.Second, "6 web pods Ready on all three nodes", func() bool {
		m := webReady()
		return total(m) == 6 && len(m[server]) > 0 && len(m[agent0]) > 0 && len(m[agent1]) > 0
	})
	clients := map[string]string{}
	framework.Eventually(t, 30*time.Second, "a client pod on every node", func() bool {
		for _, p := range podsLabelled(t, c, "client") {
			if p.Status.Phase == corev1.PodRunning {
				clients[p.Spec.NodeName] = p.Name
			}
		}
		return len(clients) == 3
	})
	// From every node: the Service by name, and a web pod on another node
	// by IP.
	m := webReady()
	for node, client := range clients {
		var other corev1.Pod
		for n, ps := range m {
			if n != node {
				other = ps[0]
			}
		}
		for _, url := range []string{"http://web/hostname", "http://" + other.Status.PodIP + ":8080/hostname"} {
			framework.Eventually(t, 20*time.Second, client+" on "+node+" fetches "+url, func() bool {
				r := k.Run(c, "", nil, "exec", client, "--", "timeout", "5", "wget", "-qO-", url)
				return r.Err == nil && strings.HasPrefix(r.Stdout, "web-")
			})
		}
	}

	// A machine lost: the agent and its containers killed.
	replaced := func(what, node string, gone []corev1.Pod, since time.Time) {
		t.Helper()
		framework.Eventually(t, 15*time.Second, node+" Unknown", func() bool {
			n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			return err == nil && nodeCondition(n, corev1.NodeReady).Status == corev1.ConditionUnknown
		})
		t.Logf("%s: node Unknown after %v", what, time.Since(since).Round(100*time.Millisecond))
		framework.Eventually(t, 5*time.Second, node+"'s pods out of the endpoints", func() bool {
			for _, ip := range readyEndpoints(t, c, "web") {
				for _, p := range gone {
					if p.Status.PodIP == ip {
						return false
					}
				}
			}
			return true
		})
		framework.Eventually(t, 30*time.Second, node+"'s pods evicted", func() bool {
			for _, p := range gone {
				cur, err := cs.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
				if err == nil && cur.DeletionTimestamp == nil {
					return false
				}
			}
			return true
		})
		t.Logf("%s: pods evicted after %v", what, time.Since(since).Round(100*time.Millisecond))
		framework.Eventually(t, 30*time.Second, "6 web pods Ready off "+node, func() bool {
			m := webReady()
			return total(m) == 6 && len(m[node]) == 0
		})
		t.Logf("%s: replacements Ready after %v", what, time.Since(since).Round(100*time.Millisecond))
	}
	back := func(node string, gone []corev1.Pod) {
		t.Helper()
		framework.Eventually(t, 30*time.Second, node+" Ready again", func() bool {
			n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			return err == nil && nodeReady(n) && len(n.Spec.Taints) == 0
		})
		var uids []string
		for _, p := range gone {
			uids = append(uids, string(p.UID))
		}
		framework.Eventually(t, 30*time.Second, "the moved pods' containers gone from "+node, func() bool { return len(podProcesses(uids)) == 0 })
		if n := len(podsLabelled(t, c, "web")); n != 6 {
			t.Fatalf("%d web pods after %s came back, want 6", n, node)
		}
	}
	framework.Eventually(t, 60*time.Second, "db-0 Running on "+agent0+" with its claim", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == agent0
	})
	db, _ := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
	claim, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-db-0", metav1.GetOptions{})
	if err != nil || claim.Status.Phase != corev1.ClaimBound {
		t.Fatalf("claim data-db-0: %v %v", claim.Status.Phase, err)
	}
	gone := append(webReady()[agent0], *db)
	killed := time.Now()
	l.Node(t, "kill", "agent-0")
	replaced("kill", agent0, gone[:len(gone)-1], killed)
	// The StatefulSet's pod is evicted but not replaced while its node
	// is only unreachable: it may still run there.
	framework.Eventually(t, 10*time.Second, "db-0 terminating", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		return err == nil && p.DeletionTimestamp != nil
	})
	time.Sleep(3 * time.Second)
	if p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{}); err != nil || p.UID != db.UID {
		t.Fatalf("db-0 replaced while its node was only unreachable: %v", err)
	}
	// Declared out of service, the pod GC force-deletes it and the
	// StatefulSet makes db-0 again, with the same claim.
	k.Must(t, c, "taint", "node", agent0, "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute")
	framework.Eventually(t, 30*time.Second, "db-0 recreated with its claim", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		return err == nil && p.UID != db.UID && len(p.Spec.Volumes) > 0 && p.Spec.Volumes[0].PersistentVolumeClaim != nil &&
			p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName == "data-db-0"
	})
	k.Must(t, c, "taint", "node", agent0, "node.kubernetes.io/out-of-service-")
	l.Node(t, "start", "agent-0")
	back(agent0, gone)
	framework.Eventually(t, 60*time.Second, "db-0 Running again on "+agent0, func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && p.UID != db.UID
	})
	if now, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-db-0", metav1.GetOptions{}); err != nil || now.UID != claim.UID {
		t.Fatalf("db-0's claim replaced: %v", err)
	}
	if data := k.Must(t, c, "exec", "db-0", "--", "cat", "/data/first"); strings.TrimSpace(data) != "db-0" {
		t.Fatalf("db-0's volume after recovery holds %q, want what the first db-0 wrote", data)
	}

	gone = webReady()[agent1]
	if len(gone) == 0 {
		t.Fatalf("no web pod on %s to partition away", agent1)
	}
	cut := time.Now()
	l.Node(t, "partition", "agent-1")
	replaced("partition", agent1, gone, cut)
	l.Node(t, "heal", "agent-1")
	back(agent1, gone)

	// A node added to the running cluster gets the DaemonSet's pod within
	// seconds: agent-1 stopped, its Node deleted, then started again
	// registers as a new Node.
	l.Node(t, "stop", "agent-1")
	k.Must(t, c, "delete", "node", agent1)
	l.Node(t, "start", "agent-1")
	added := time.Now()
	framework.Eventually(t, 30*time.Second, "a client pod Running on the added "+agent1, func() bool {
		for _, p := range podsLabelled(t, c, "client") {
			if p.Spec.NodeName == agent1 && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				return true
			}
		}
		return false
	})
	t.Logf("DaemonSet pod Running on the added node %v after its agent started", time.Since(added).Round(100*time.Millisecond))
	framework.Eventually(t, 60*time.Second, "6 web pods Ready", func() bool { return total(webReady()) == 6 })

	// A budget no eviction may break.
	k.Must(t, c, "create", "pdb", "web", "--selector=app=web", "--min-available=6")
	framework.Eventually(t, 15*time.Second, "budget status", func() bool {
		pdb, err := cs.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && pdb.Status.ObservedGeneration == pdb.Generation && pdb.Status.CurrentHealthy == 6
	})
	victim := webReady()[server][0]
	err = cs.CoreV1().Pods("default").EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: victim.Name, Namespace: "default"}})
	if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "Cannot evict pod as it would violate the pod's disruption budget.") {
		t.Fatalf("eviction against a spent budget: %v, want 429", err)
	}

	// Drain with minAvailable 5: at most one pod down at a time.
	k.Must(t, c, "patch", "pdb", "web", "--type=merge", "-p", `{"spec":{"minAvailable":5}}`)
	var mu sync.Mutex
	least := 6
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if n := total(webReady()); n > 0 {
				mu.Lock()
				least = min(least, n)
				mu.Unlock()
			}
		}
	}()
	// The node with most web pods (the failures moved them there).
	drained, most := "", 0
	for n, ps := range webReady() {
		if len(ps) > most {
			drained, most = n, len(ps)
		}
	}
	if most < 2 {
		t.Fatalf("no node holds two web pods to drain: %v", webReady())
	}
	drainStart := time.Now()
	out := k.Must(t, c, "drain", drained, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s")
	close(stop)
	<-sampled
	t.Logf("drain of %s (%d web pods) took %v:\n%s", drained, most, time.Since(drainStart).Round(100*time.Millisecond), out)
	if !strings.Contains(out, "drained") {
		t.Fatalf("kubectl drain output:\n%s", out)
	}
	m = webReady()
	if len(m[drained]) != 0 || total(m) < 5 {
		t.Fatalf("after drain: %d web pods Ready on %s, %d in all", len(m[drained]), drained, total(m))
	}
	if least < 5 {
		t.Fatalf("only %d web pods Ready at one sample during the drain; the budget says 5", least)
	}
	framework.Eventually(t, 30*time.Second, "6 web pods Ready after the drain", func() bool { return total(webReady()) == 6 })
	if n, _ := cs.CoreV1().Nodes().Get(ctx, drained, metav1.GetOptions{}); !n.Spec.Unschedulable {
		t.Fatalf("%s not cordoned after drain", drained)
	}
	if daemon := podsOnNode(t, c, drained); len(daemon) != 1 || daemon[0].Labels["app"] != "client" {
		t.Fatalf("pods left on the drained node: %d, want only the DaemonSet's", len(daemon))
	}
	k.Must(t, c, "uncordon", drained)
}
