package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/pkg/network/egress"
	"github.com/skiff/skiff/pkg/runtime/cri"
	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/test/e2e/framework"
)

// workerNS is the node that TestCrossNode runs in a network namespace.
const workerNS = "worker-ns"

// TestCrossNode runs a second node in a network namespace of its own,
// joined to the host by a veth pair, so that traffic between the nodes'
// pods really leaves one node and enters the other over host-gw routes
// (every other multi-node test shares the host's namespace, where each
// node's bridge is local). Pods reach each other by pod IP both ways, a
// Service over a pod on each node answers from both to clients on both
// nodes (by cluster IP and by DNS name), a NodePort answers on the
// worker's address from the host, and nothing is left behind.
func TestCrossNode(t *testing.T) {
	var serverData, agentData string
	var serverTables, workerTables []string
	cidrs := map[string]string{}
	// Registered first, so it runs last: after the agent, the server and
	// the namespace are gone.
	t.Cleanup(func() { checkNothingLeft(t, []string{serverData, agentData}, serverTables, cidrs) })

	ns := framework.NewNetNS(t)
	t.Logf("network namespace %s: host %s, node %s", ns.Name, ns.HostIP, ns.IP)
	// Runs after the agent has stopped, before the namespace goes: the
	// agent removed its routes and rules.
	t.Cleanup(func() {
		out, _ := ns.Run("nft", "list", "tables")
		for _, table := range workerTables {
			if strings.Contains(out, table) {
				t.Errorf("nftables table %s left in %s:\n%s", table, ns.Name, out)
			}
		}
		if out, _ := ns.Run("ip", "-4", "route", "show", "proto", "83"); strings.TrimSpace(out) != "" {
			t.Errorf("host-gw routes left in %s:\n%s", ns.Name, out)
		}
	})

	// The server listens on all addresses (kubectl uses loopback, the
	// worker the veth), and its node's InternalIP is the host's end of
	// the veth, so the worker's route to its pods is on-link.
	c := nodeClusterWith(t, nil, "--bind-address", "0.0.0.0", "--node-ip", ns.HostIP)
	serverData, serverTables = c.DataDir, nodeTables(filepath.Join(c.DataDir, "agent"))
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	cs := c.Client()

	// The worker imports its images at start.
	agentData = t.TempDir()
	agentDir := filepath.Join(agentData, "agent")
	workerTables = nodeTables(agentDir)
	drop := agent.ImagesDropDir(agentDir)
	if err := os.MkdirAll(drop, 0o700); err != nil {
		t.Fatal(err)
	}
	framework.SaveImage(t, framework.BusyboxImage(t), busybox, filepath.Join(drop, "busybox.tar"))
	framework.SaveImage(t, framework.TestServerImage(t), testServer, filepath.Join(drop, "testserver.tar"))
	framework.StartProcessIn(t, ns, "agent", "--server", fmt.Sprintf("https://%s:%d", ns.HostIP, c.Port), "--token", c.Token(t),
		"--node-name", workerNS, "--node-ip", ns.IP, "--data-dir", agentData, "--cleanup-on-exit")

	// Both nodes Ready, with their own pod ranges and the addresses
	// routes go through.
	framework.Eventually(t, 30*time.Second, "both nodes Ready with pod CIDRs", func() bool {
		for _, name := range []string{framework.NodeName, workerNS} {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || !nodeReady(n) || n.Spec.PodCIDR == "" {
				return false
			}
			cidrs[name] = n.Spec.PodCIDR
		}
		return true
	})
	if cidrs[framework.NodeName] == cidrs[workerNS] {
		t.Fatalf("both nodes got pod CIDR %s", cidrs[workerNS])
	}
	for name, want := range map[string]string{framework.NodeName: ns.HostIP, workerNS: ns.IP} {
		n, _ := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if got := nodeInternalIP(n); got != want {
			t.Fatalf("node %s InternalIP %q, want %s (addresses %v)", name, got, want, n.Status.Addresses)
		}
	}
	t.Logf("pod CIDRs: %v", cidrs)

	// host-gw: each side routes the other's pod range via the other's
	// end of the veth.
	framework.Eventually(t, 20*time.Second, "the host's route to "+workerNS+"'s pods", func() bool {
		out, _ := exec.Command("ip", "-4", "route", "show", cidrs[workerNS]).CombinedOutput()
		return strings.Contains(string(out), "via "+ns.IP+" ")
	})
	framework.Eventually(t, 20*time.Second, workerNS+"'s route to the server node's pods", func() bool {
		out, _ := ns.Run("ip", "-4", "route", "show", cidrs[framework.NodeName])
		return strings.Contains(out, "via "+ns.HostIP+" ")
	})

	// Each node has its service proxy and masquerade tables (which must
	// go at the end).
	framework.Eventually(t, 20*time.Second, "both nodes' nftables tables", func() bool {
		host := nftTables(t)
		worker, _ := ns.Run("nft", "list", "tables")
		for _, table := range serverTables {
			if !strings.Contains(host, "table ip "+table+"\n") {
				return false
			}
		}
		for _, table := range workerTables {
			if !strings.Contains(worker, "table ip "+table+"\n") {
				return false
			}
		}
		return true
	})

	// A test server on each node, placed by the scheduler.
	servers := map[string]string{framework.NodeName: "web-server", workerNS: "web-worker"}
	for node, name := range servers {
		k.MustIn(t, c, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels:
    app: crossnode
spec:
  nodeSelector:
    kubernetes.io/hostname: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: %s
    imagePullPolicy: Never
    ports:
    - containerPort: 8080
`, name, node, testServer), "create", "-f", "-")
	}
	podIP := map[string]string{}
	for node, name := range servers {
		p := waitPod(t, c, name, 60*time.Second, "Running with an IP", func(p *corev1.Pod) bool { return running(p) && p.Status.PodIP != "" })
		if p.Spec.NodeName != node {
			t.Fatalf("%s runs on %s, want %s", name, p.Spec.NodeName, node)
		}
		if _, cidr, _ := net.ParseCIDR(cidrs[node]); !cidr.Contains(net.ParseIP(p.Status.PodIP)) {
			t.Fatalf("%s has IP %s, outside %s's pod CIDR %s", name, p.Status.PodIP, node, cidrs[node])
		}
		podIP[node] = p.Status.PodIP
	}

	// Pod to pod across nodes, by pod IP, both ways; the packets arrive
	// unchanged (no NAT): the server sees the client pod's address.
	// (busybox wget's own -T crashes Debian's busybox 1.35: timeout
	// bounds it instead.)
	for from, to := range map[string]string{framework.NodeName: workerNS, workerNS: framework.NodeName} {
		name := "to-" + strings.ReplaceAll(to, "-", "")
		out, client := inPodOn(t, c, k, from, name, "busybox timeout 5 wget -qO- http://"+podIP[to]+":8080/ && busybox timeout 5 wget -qO- http://"+podIP[to]+":8080/client")
		if want := "hello from " + servers[to] + "\n" + client.Status.PodIP + ":"; !strings.Contains(out, want) {
			t.Errorf("pod on %s to %s's pod %s: %q, want %q", from, to, podIP[to], out, want)
		}
	}

	// A Service over both: from a pod on each node, by cluster IP and by
	// name, both pods answer.
	k.Must(t, c, "create", "service", "clusterip", "crossnode", "--tcp=80:8080")
	framework.Eventually(t, 20*time.Second, "2 endpoints of crossnode", func() bool {
		ep, err := cs.CoreV1().Endpoints("default").Get(ctx, "crossnode", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 2
	})
	svc, err := cs.CoreV1().Services("default").Get(ctx, "crossnode", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{framework.NodeName, workerNS} {
		out, _ := inPodOn(t, c, k, from, "svc-from-"+strings.ReplaceAll(from, "-", ""),
			"for i in $(seq 30); do echo ip $(busybox timeout 3 wget -qO- http://"+svc.Spec.ClusterIP+"/); done; "+
				"for i in $(seq 30); do echo name $(busybox timeout 3 wget -qO- http://crossnode/); done")
		for _, how := range []string{"ip", "name"} {
			seen := answersBy(out, how)
			if seen["web-server"] == 0 || seen["web-worker"] == 0 || seen["web-server"]+seen["web-worker"] != 30 {
				t.Errorf("from %s by %s, 30 requests reached %v, want both pods and no failures:\n%s", from, how, seen, out)
			}
		}
	}

	// A NodePort answers on the worker's address, from the host, from
	// both pods.
	nodePort := 30000 + int(time.Now().UnixNano()%2700)
	k.MustIn(t, c, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: crossnode-np
spec:
  type: NodePort
  selector:
    app: crossnode
  ports:
  - port: 80
    targetPort: 8080
    nodePort: %d
`, nodePort), "create", "-f", "-")
	url := fmt.Sprintf("http://%s:%d/", ns.IP, nodePort)
	seen := map[string]int{}
	framework.Eventually(t, 20*time.Second, "both pods answering at "+url, func() bool {
		if body, err := get(url); err == nil {
			for h, n := range hostnames(body) {
				seen[h] += n
			}
		}
		return seen["web-server"] > 0 && seen["web-worker"] > 0
	})
}

// inPodOn is inPod on the given node; it also returns the finished pod.
func inPodOn(t *testing.T, c *framework.Cluster, k framework.Kubectl, node, name, script string) (string, *corev1.Pod) {
	t.Helper()
	yaml := strings.Replace(podYAML(name, busybox, "Never", "", "sh", "-c", script), "nodeName: "+framework.NodeName, "nodeName: "+node, 1)
	k.MustIn(t, c, yaml, "create", "-f", "-")
	p := waitPod(t, c, name, 90*time.Second, "finished", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	logs := k.Must(t, c, "logs", name)
	k.Must(t, c, "delete", "pod", name, "--wait=false")
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s on %s failed:\n%s", name, node, logs)
	}
	return logs, p
}

// answersBy counts, among out's lines "<how> hello from <pod>", the
// answers by pod; a line "<how>" alone (a failed request) counts for "".
func answersBy(out, how string) map[string]int {
	seen := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), how)
		if !ok || (rest != "" && rest[0] != ' ') {
			continue
		}
		h, _ := strings.CutPrefix(strings.TrimSpace(rest), "hello from ")
		seen[h]++
	}
	return seen
}

// nodeTables are the nftables tables of the node whose state is in
// agentDir: its service proxy's and its egress masquerade's.
func nodeTables(agentDir string) []string {
	root := filepath.Join(agentDir, "runtime")
	return []string{agent.ProxyTable(root), egress.TableName(cri.Bridge(root))}
}

// nodeInternalIP is n's first InternalIP, "" if it has none.
func nodeInternalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// checkNothingLeft checks, once both nodes and the namespace are gone,
// that nothing of theirs is left on the host: no process (skiff's, by
// its data dir, or a container's, by its node's cgroup), mount or
// cgroup; no route to their pod ranges; no nftables table of the
// server's node.
func checkNothingLeft(t *testing.T, dataDirs, tables []string, cidrs map[string]string) {
	for _, cidr := range cidrs {
		if out, _ := exec.Command("ip", "-4", "route", "show", "to", "match", cidr).CombinedOutput(); strings.Contains(string(out), cidr) {
			t.Errorf("route to %s left on the host:\n%s", cidr, out)
		}
	}
	out := nftTables(t)
	for _, table := range tables {
		if strings.Contains(out, table) {
			t.Errorf("nftables table %s left on the host:\n%s", table, out)
		}
	}
	var dirs, cgroups []string
	for _, d := range dataDirs {
		if d != "" {
			dirs = append(dirs, d)
			// The server's node keeps its state in <data-dir>/agent, a
			// joined agent's in <data-dir>/agent too.
			cgroups = append(cgroups, daemon.CgroupRoot(filepath.Join(d, "agent"))+"/")
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p + "/cmdline")
		cg, _ := os.ReadFile(p + "/cgroup")
		for i, d := range dirs {
			if strings.Contains(string(cmdline), d) || strings.Contains(string(cg), cgroups[i]) {
				t.Errorf("process left: %s: %s", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
				// Ours, by its data dir or cgroup: it goes.
				if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for i, d := range dirs {
		if strings.Contains(string(mi), d+"/") {
			t.Errorf("mounts left under %s", d)
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*" + strings.TrimSuffix(cgroups[i], "/")); len(left) > 0 {
			t.Errorf("node cgroups left: %v", left)
		}
	}
}
