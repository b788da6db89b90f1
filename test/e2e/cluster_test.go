package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff/skiff/pkg/localcluster"
	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/test/e2e/framework"
)

// TestClusterCommand creates a local cluster of a server and two agents
// with `skiff cluster create` (every node in a network namespace of its
// own on a private bridge), checks that kubectl sees its nodes Ready
// through the printed kubeconfig, that a pod on one agent reaches a pod
// on the other by pod IP, and that `skiff cluster list` shows it; then
// `skiff cluster delete` leaves no namespace, link, process, nftables
// table, mount or cgroup of it behind.
func TestClusterCommand(t *testing.T) {
	bin := framework.Binary(t)
	dir := t.TempDir()
	name := "e2e" + fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	image := filepath.Join(t.TempDir(), "busybox.tar")
	framework.SaveImage(t, framework.BusyboxImage(t), busybox, image)

	skiff := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			if _, errOut, err := skiff("cluster", "delete", name); err != nil {
				t.Errorf("cleanup: skiff cluster delete %s: %v\n%s", name, err, errOut)
			}
		}
	})

	start := time.Now()
	out, errOut, err := skiff("cluster", "create", name, "--agents", "2", "--dir", dir, "--image", image, "--wait", "60s")
	if err != nil {
		t.Fatalf("skiff cluster create: %v\n%s\n%s", err, errOut, nodeLogs(dir))
	}
	t.Logf("cluster create took %s:\n%s", time.Since(start).Round(time.Millisecond), errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	kubeconfig := lines[len(lines)-1]
	if kubeconfig != filepath.Join(dir, "kubeconfig") {
		t.Fatalf("last line of stdout %q, want the kubeconfig %s", kubeconfig, filepath.Join(dir, "kubeconfig"))
	}
	state, err := localcluster.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}

	kubectl := []string{bin, "kubectl"}
	if path, err := exec.LookPath("kubectl"); err == nil {
		kubectl = []string{path}
	}
	kc := func(args ...string) (string, error) {
		cmd := exec.Command(kubectl[0], append(kubectl[1:], args...)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustKC := func(args ...string) string {
		t.Helper()
		out, err := kc(args...)
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return out
	}

	// Every node Ready, at its own address on the bridge.
	var nodes struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Addresses  []struct{ Type, Address string }
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(mustKC("get", "nodes", "-o", "json")), &nodes); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, n := range state.Nodes {
		want[n.Name] = n.IP
	}
	if len(nodes.Items) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		ready, ip := false, ""
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == "Ready" && c.Status == "True")
		}
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" {
				ip = a.Address
			}
		}
		if !ready || ip != want[n.Metadata.Name] {
			t.Errorf("node %s: Ready %v, InternalIP %s, want Ready at %s", n.Metadata.Name, ready, ip, want[n.Metadata.Name])
		}
	}

	// The image given at create runs on the agents, and pods on different
	// nodes reach each other over the bridge.
	for i, args := range [][]string{
		{"sh", "-c", "echo hello-from-p0 > /tmp/index.html && exec busybox httpd -f -p 18080 -h /tmp"},
		{"sleep", "3600"},
	} {
		pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: p%d
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: %s
    imagePullPolicy: Never
    command: ["%s"]
`, i, localcluster.NodeName(name, localcluster.RoleAgent, i), busybox, strings.Join(args, `", "`))
		cmd := exec.Command(kubectl[0], append(kubectl[1:], "create", "-f", "-")...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		cmd.Stdin = strings.NewReader(pod)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("create pod: %v\n%s", err, out)
		}
	}
	mustKC("wait", "--for=condition=Ready", "pod/p0", "pod/p1", "--timeout=30s")
	ip := strings.TrimSpace(mustKC("get", "pod", "p0", "-o", "jsonpath={.status.podIP}"))
	var got string
	framework.Eventually(t, 15*time.Second, "p1 on agent-1 fetches from p0 on agent-0", func() bool {
		got, _ = kc("exec", "p1", "--", "busybox", "timeout", "5", "wget", "-qO-", "http://"+ip+":18080/")
		return strings.Contains(got, "hello-from-p0")
	})
	t.Logf("p1 -> p0 (%s): %q", ip, strings.TrimSpace(got))

	// Fault injection on agent-0, seen from p1 on agent-1.
	fetch := func() bool {
		out, _ := kc("exec", "p1", "--", "busybox", "timeout", "3", "wget", "-qO-", "http://"+ip+":18080/")
		return strings.Contains(out, "hello-from-p0")
	}
	httpdRuns := func() bool { return exec.Command("pgrep", "-f", "httpd -f -p 18080 -h /tmp").Run() == nil }
	node := func(action string) {
		t.Helper()
		if _, errOut, err := skiff("cluster", "node", action, name, "agent-0"); err != nil {
			t.Fatalf("skiff cluster node %s: %v\n%s", action, err, errOut)
		}
	}
	agent0 := state.Node("agent-0")
	// stop: the agent goes, its containers stay and keep serving.
	node("stop")
	framework.Eventually(t, 5*time.Second, "agent-0 gone after node stop", func() bool { return !alivePid(agent0.Pid) })
	if !httpdRuns() || !fetch() {
		t.Error("p0 stopped serving when its node's agent was stopped")
	}
	node("start")
	// partition: p0 runs but is out of reach; heal: back.
	node("partition")
	if fetch() {
		t.Error("p0 answered across a partition")
	}
	if !httpdRuns() {
		t.Error("p0 stopped running when its node was partitioned")
	}
	node("heal")
	framework.Eventually(t, 15*time.Second, "p0 reachable after heal", fetch)
	// kill: nothing of the node is left; start: p0 comes back.
	node("kill")
	if httpdRuns() {
		t.Error("p0's httpd runs after node kill")
	}
	if out, _ := exec.Command("ip", "netns", "pids", agent0.NetNS).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("processes in %s after node kill: %s", agent0.NetNS, out)
	}
	node("start")
	framework.Eventually(t, 40*time.Second, "p0 serving again after kill and start", fetch)

	// `skiff cluster list` shows it running.
	out, _, err = skiff("cluster", "list")
	if err != nil || !strings.Contains(out, name) {
		t.Fatalf("skiff cluster list: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 5 && f[0] == name && (f[1] != "1" || f[2] != "2" || f[4] != "running") {
			t.Errorf("skiff cluster list: %q, want 1 server, 2 agents, running", l)
		}
	}

	// Delete leaves nothing behind.
	start = time.Now()
	if _, errOut, err := skiff("cluster", "delete", name); err != nil {
		t.Fatalf("skiff cluster delete: %v\n%s", err, errOut)
	}
	deleted = true
	t.Logf("cluster delete took %s", time.Since(start).Round(time.Millisecond))
	netns, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	links, _ := exec.Command("ip", "-o", "link").CombinedOutput()
	tables := nftTables(t)
	for _, n := range state.Nodes {
		if strings.Contains(string(netns), n.NetNS) {
			t.Errorf("network namespace %s left:\n%s", n.NetNS, netns)
		}
		if strings.Contains(string(links), n.HostLink) {
			t.Errorf("link %s left", n.HostLink)
		}
		for _, table := range nodeTables(n.AgentDir()) {
			if strings.Contains(tables, table) {
				t.Errorf("nftables table %s left on the host", table)
			}
		}
		cg := daemon.CgroupRoot(n.AgentDir())
		if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cg)); len(left) > 0 {
			t.Errorf("cgroups of %s left: %v", n.Name, left)
		}
	}
	if strings.Contains(string(links), state.Bridge) {
		t.Errorf("bridge %s left", state.Bridge)
	}
	if out, _ := exec.Command("ip", "-4", "route", "show", state.Subnet).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("route to %s left: %s", state.Subnet, out)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), dir) {
		t.Errorf("mounts under %s left", dir)
	}
	if ps, _ := exec.Command("ps", "-eo", "pid,args").CombinedOutput(); strings.Contains(string(ps), dir) {
		t.Errorf("processes of the cluster left:\n%s", grepLines(string(ps), dir))
	}
	if _, err := os.Stat(localcluster.StateFile(dir)); err == nil {
		t.Errorf("%s left", localcluster.StateFile(dir))
	}
	if out, _, _ := skiff("cluster", "list"); strings.Contains(out, name+" ") {
		t.Errorf("skiff cluster list still shows %s:\n%s", name, out)
	}
}

// nodeLogs is the tail of every node's log under a cluster's dir.
func nodeLogs(dir string) string {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "skiff.log"))
	var b strings.Builder
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		lines := strings.Split(string(data), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", l, strings.Join(lines, "\n"))
	}
	return b.String()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// alivePid says whether pid runs (a zombie, not reaped yet, does not).
func alivePid(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid <= 0 || syscall.Kill(pid, 0) != nil || err != nil {
		return false
	}
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || i+2 >= len(st) || st[i+2] != 'Z'
}
