package e2e

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestNodesRegisterAndJoin checks the server's own node registers as a
// Ready control-plane node with a lease, and that `skiff agent` joins with
// the server's token (and is refused with a token pinning another CA).
func TestNodesRegisterAndJoin(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{Agent: true, ExtraArgs: []string{"--node-name", "server-node"}})
	cs := c.Client()
	ctx := context.Background()
	framework.Eventually(t, 10*time.Second, "server node Ready", func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, "server-node", metav1.GetOptions{})
		return err == nil && nodeReady(n)
	})
	n, _ := cs.CoreV1().Nodes().Get(ctx, "server-node", metav1.GetOptions{})
	if n.Labels["node-role.kubernetes.io/control-plane"] != "true" || n.Labels[corev1.LabelHostname] != "server-node" || n.Labels[corev1.LabelOSStable] != "linux" {
		t.Fatalf("labels: %v", n.Labels)
	}
	if n.Status.Capacity.Cpu().IsZero() || n.Status.Capacity.Memory().IsZero() || n.Status.Capacity.Pods().Value() != 110 || len(n.Status.Addresses) == 0 {
		t.Fatalf("capacity/addresses: %+v %+v", n.Status.Capacity, n.Status.Addresses)
	}
	// The heartbeat Lease follows registration.
	framework.Eventually(t, 10*time.Second, "node lease", func() bool {
		_, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "server-node", metav1.GetOptions{})
		return err == nil
	})

	token := c.Token(t)
	dir := t.TempDir()
	framework.StartProcess(t, "agent", "--server", c.URL(), "--token", token, "--data-dir", dir, "--node-name", "worker-1", "--cleanup-on-exit")
	framework.Eventually(t, 10*time.Second, "worker Ready", func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
		return err == nil && nodeReady(n) && n.Labels["node-role.kubernetes.io/control-plane"] == ""
	})
	out := framework.Kubectls(t)[0].Must(t, c, "get", "nodes")
	if !strings.Contains(out, "server-node") || !strings.Contains(out, "worker-1") {
		t.Fatalf("kubectl get nodes:\n%s", out)
	}
	// Each node gets its own /24 of the cluster CIDR.
	cidrs := map[string]string{}
	framework.Eventually(t, 10*time.Second, "pod CIDRs assigned", func() bool {
		for _, name := range []string{"server-node", "worker-1"} {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || n.Spec.PodCIDR == "" {
				return false
			}
			cidrs[name] = n.Spec.PodCIDR
		}
		return true
	})
	_, clusterNet, err := net.ParseCIDR(c.ClusterCIDR)
	if err != nil {
		t.Fatal(err)
	}
	for name, cidr := range cidrs {
		ip, podNet, err := net.ParseCIDR(cidr)
		if ones, _ := podNet.Mask.Size(); err != nil || !clusterNet.Contains(ip) || ones != 24 {
			t.Errorf("node %s pod CIDR %q is not a /24 of %s", name, cidr, c.ClusterCIDR)
		}
	}
	if cidrs["server-node"] == cidrs["worker-1"] {
		t.Errorf("both nodes got %s", cidrs["worker-1"])
	}

	// A token whose CA hash is not this cluster's is refused before any
	// secret is trusted.
	_, secret, _ := strings.Cut(token, "::server:")
	bad := framework.StartProcess(t, "agent", "--server", c.URL(), "--token", "K10"+strings.Repeat("0", 64)+"::server:"+secret, "--data-dir", filepath.Join(dir, "bad"), "--node-name", "intruder")
	select {
	case <-bad.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("agent with a foreign CA hash kept running")
	}
	if !strings.Contains(bad.Log(), "does not match the token's CA hash") {
		t.Fatalf("foreign CA hash: %s", bad.Log())
	}
}
