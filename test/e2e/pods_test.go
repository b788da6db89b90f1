package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/network/egress"
	"github.com/skiff/skiff/pkg/network/hostport"
	"github.com/skiff/skiff/pkg/runtime/cri"
	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/test/e2e/framework"
)

const busybox = "registry.local/busybox:e2e"

// nodeCluster starts a cluster with its node agent and the busybox image
// dropped into the node's image directory; args go to `skiff server`.
func nodeCluster(t testing.TB, args ...string) *framework.Cluster {
	t.Helper()
	return nodeClusterWith(t, nil, args...)
}

// nodeClusterWith is nodeCluster whose node also holds busybox under each
// of aliases (image references).
func nodeClusterWith(t testing.TB, aliases []string, args ...string) *framework.Cluster {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	drop := filepath.Join(data, "agent", "images")
	if err := os.MkdirAll(drop, 0o700); err != nil {
		t.Fatal(err)
	}
	img := framework.BusyboxImage(t)
	framework.SaveImage(t, img, busybox, filepath.Join(drop, "busybox.tar"))
	for i, ref := range aliases {
		framework.SaveImage(t, img, ref, filepath.Join(drop, fmt.Sprintf("alias%d.tar", i)))
	}
	c := framework.StartCluster(t, framework.Options{Agent: true, DataDir: data, ExtraArgs: args})
	framework.Eventually(t, 20*time.Second, "node Ready", func() bool {
		n, err := c.Client().CoreV1().Nodes().Get(context.Background(), framework.NodeName, metav1.GetOptions{})
		return err == nil && nodeReady(n)
	})
	return c
}

func podYAML(name, image, policy string, extra string, command ...string) string {
	quoted := make([]string, len(command))
	for i, c := range command {
		quoted[i] = fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  nodeName: %s
  restartPolicy: %s
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: %s
    imagePullPolicy: IfNotPresent
    command: [%s]
%s`, name, framework.NodeName, policy, image, strings.Join(quoted, ", "), extra)
}

func waitPod(t testing.TB, c *framework.Cluster, name string, timeout time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	framework.Eventually(t, timeout, name+" "+what, func() bool {
		var err error
		p, err = c.Client().CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && ok(p)
	})
	return p
}

func running(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
}

// TestPodsRunAsContainers covers a pod's life on a real node: Running,
// logs, deletion that leaves no process, mount or cgroup, and the
// statuses kubectl shows for crashing, completed and OOM-killed pods.
func TestPodsRunAsContainers(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, podYAML("web", busybox, "Always", "", "sh", "-c", "echo hello from skiff; while true; do sleep 1; done"), "create", "-f", "-")
	p := waitPod(t, c, "web", 30*time.Second, "Running", running)
	out := k.Must(t, c, "get", "pod", "web")
	if !strings.Contains(out, "1/1") || !strings.Contains(out, "Running") {
		t.Fatalf("get pod:\n%s", out)
	}
	framework.Eventually(t, 10*time.Second, "logs", func() bool {
		return k.Run(c, "", nil, "logs", "web").Stdout == "hello from skiff\n"
	})
	if out := k.Must(t, c, "logs", "web", "--timestamps"); !strings.Contains(out, "Z hello from skiff") {
		t.Fatalf("logs --timestamps: %q", out)
	}
	containerID := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "skiff://")
	uid := string(p.UID)
	if procs := pgrep(t, "hello from skiff"); procs == "" {
		t.Fatal("the container's process is not running on the node")
	}

	// Deleting stops the process and removes rootfs mounts and cgroups.
	k.Must(t, c, "delete", "pod", "web")
	if procs := pgrep(t, "hello from skiff"); procs != "" {
		t.Fatalf("container process survived deletion: %s", procs)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), containerID) || strings.Contains(string(mi), uid) {
		t.Fatal("mounts of the deleted pod remain")
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/memory/skiff/*/pod" + uid); len(dirs) > 0 {
		t.Fatalf("cgroups of the deleted pod remain: %v", dirs)
	}

	// Crash loops back off, growing.
	k.MustIn(t, c, podYAML("crasher", busybox, "Always", "", "sh", "-c", "echo crash; exit 2"), "create", "-f", "-")
	waitPod(t, c, "crasher", 30*time.Second, "in CrashLoopBackOff", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CrashLoopBackOff" && cs[0].RestartCount >= 1 &&
			cs[0].LastTerminationState.Terminated != nil && cs[0].LastTerminationState.Terminated.ExitCode == 2
	})
	p = waitPod(t, c, "crasher", 40*time.Second, "backing off longer", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 2 && cs[0].State.Waiting != nil && strings.Contains(cs[0].State.Waiting.Message, "back-off 20s")
	})
	if out := k.Must(t, c, "get", "pod", "crasher"); !strings.Contains(out, "CrashLoopBackOff") {
		t.Fatalf("get crasher:\n%s", out)
	}
	// Repeated events are one Event counted up, as upstream's recorder
	// does, and describe shows "(x2 over ...)".
	evs, err := c.Client().CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=crasher,reason=Started"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 1 || evs.Items[0].Count < 2 || !evs.Items[0].LastTimestamp.After(evs.Items[0].FirstTimestamp.Time) {
		t.Fatalf("Started events of crasher not deduplicated: %+v", evs.Items)
	}
	if out := k.Must(t, c, "describe", "pod", "crasher"); !regexp.MustCompile(`Started .*\(x[0-9]+ over`).MatchString(out) {
		t.Fatalf("describe crasher does not count repeated events:\n%s", out)
	}

	// restartPolicy Never: Completed; a memory hog: OOMKilled.
	k.MustIn(t, c, podYAML("job", busybox, "Never", "", "sh", "-c", "echo done"), "create", "-f", "-")
	hog := "    resources:\n      limits:\n        memory: 48Mi\n"
	k.MustIn(t, c, podYAML("hog", busybox, "Never", hog, "dd", "if=/dev/zero", "of=/dev/null", "bs=160M", "count=1"), "create", "-f", "-")
	// A small memory limit is enough: the container's init is the lean
	// skiff-runtime binary, not skiff.
	tiny := "    resources:\n      limits:\n        memory: 6Mi\n"
	k.MustIn(t, c, podYAML("tiny", busybox, "Never", tiny, "sh", "-c", "echo small"), "create", "-f", "-")
	waitPod(t, c, "job", 30*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if p := waitPod(t, c, "tiny", 30*time.Second, "finished", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}); p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod with a 6Mi memory limit: %+v", p.Status.ContainerStatuses)
	}
	p = waitPod(t, c, "hog", 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Fatalf("memory hog: %+v", p.Status.ContainerStatuses[0].State)
	}
	out = k.Must(t, c, "get", "pods", "job", "hog")
	if !strings.Contains(out, "Completed") || !strings.Contains(out, "OOMKilled") {
		t.Fatalf("get pods:\n%s", out)
	}
}

func pgrep(t testing.TB, pattern string) string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "--", pattern).Output()
	return strings.TrimSpace(string(out))
}

// TestImagePulledFromLocalRegistry runs a pod whose image comes from a
// registry on 127.0.0.1, over plain HTTP.
func TestImagePulledFromLocalRegistry(t *testing.T) {
	c := nodeCluster(t)
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/e2e/pulled:v1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, framework.BusyboxImage(t)); err != nil {
		t.Fatal(err)
	}
	k := framework.Kubectls(t)[0]
	k.MustIn(t, c, strings.Replace(podYAML("pulled", ref, "Always", "", "sh", "-c", "echo pulled; sleep 1000"), "IfNotPresent", "Always", 1), "create", "-f", "-")
	p := waitPod(t, c, "pulled", 60*time.Second, "Running", running)
	if !strings.Contains(p.Status.ContainerStatuses[0].ImageID, "@sha256:") {
		t.Fatalf("imageID of a pulled image: %q", p.Status.ContainerStatuses[0].ImageID)
	}
	out := k.Must(t, c, "describe", "pod", "pulled")
	if !strings.Contains(out, "Pulling image") || !strings.Contains(out, "Successfully pulled image") {
		t.Fatalf("describe:\n%s", out)
	}

	// A tag the registry does not have: ErrImagePull, then back-off.
	missing := strings.TrimPrefix(reg.URL, "http://") + "/e2e/pulled:missing"
	k.MustIn(t, c, podYAML("missing", missing, "Always", "", "sh"), "create", "-f", "-")
	waitPod(t, c, "missing", 30*time.Second, "in ImagePullBackOff", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "ImagePullBackOff"
	})
	out = k.Must(t, c, "describe", "pod", "missing")
	for _, want := range []string{"Failed to pull image", "Error: ErrImagePull", "Back-off pulling image", "Error: ImagePullBackOff"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not present") {
		t.Fatalf("the kubelet tried to create a container without its image:\n%s", out)
	}
}

// TestAgentRestartKeepsContainers kills the server (and its agent) with
// SIGKILL; after a restart the pod's container is the same one, never
// restarted.
func TestAgentRestartKeepsContainers(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[0]
	k.MustIn(t, c, podYAML("survivor", busybox, "Always", "", "sh", "-c", "echo survivor; while true; do sleep 1; done"), "create", "-f", "-")
	before := waitPod(t, c, "survivor", 30*time.Second, "Running", running)
	c.Kill()
	if pgrep(t, "echo survivor") == "" {
		t.Fatal("killing the agent killed the container")
	}
	c.Restart()
	framework.Eventually(t, 20*time.Second, "node Ready after restart", func() bool {
		n, err := c.Client().CoreV1().Nodes().Get(context.Background(), framework.NodeName, metav1.GetOptions{})
		return err == nil && nodeReady(n)
	})
	time.Sleep(3 * time.Second) // several syncs of the new kubelet
	after := waitPod(t, c, "survivor", 10*time.Second, "Running after restart", running)
	if after.Status.ContainerStatuses[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID || after.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("container restarted: before %s, after %s restarts %d", before.Status.ContainerStatuses[0].ContainerID, after.Status.ContainerStatuses[0].ContainerID, after.Status.ContainerStatuses[0].RestartCount)
	}
	if out := k.Must(t, c, "logs", "survivor"); out != "survivor\n" {
		t.Fatalf("logs after restart: %q", out)
	}
}

// TestCleanupOnExitLeavesNothing stops a server started with
// --cleanup-on-exit and checks no process, mount, cgroup or runtime is
// left.
func TestCleanupOnExitLeavesNothing(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[0]
	k.MustIn(t, c, podYAML("leftover", busybox, "Always", "", "sh", "-c", "echo leftover-check; while true; do sleep 1; done"), "create", "-f", "-")
	// Its tmpfs volumes are mounts the kubelet would only remove when the
	// pod is deleted: cleanup must remove them anyway.
	k.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata: {name: volumes}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: `+busybox+`
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    volumeMounts: [{name: mem, mountPath: /mem}]
    # A host port: its nftables table must go too.
    ports: [{containerPort: 80, hostPort: 54397, hostIP: 203.0.113.77}]
  volumes: [{name: mem, emptyDir: {medium: Memory}}]
`, "create", "-f", "-")
	p := waitPod(t, c, "leftover", 30*time.Second, "Running", running)
	waitPod(t, c, "volumes", 30*time.Second, "Running", running)
	bridge := cri.Bridge(filepath.Join(c.DataDir, "agent", "runtime"))
	if _, err := net.InterfaceByName(bridge); err != nil {
		t.Fatalf("pod network bridge %s: %v", bridge, err)
	}
	framework.Eventually(t, 10*time.Second, "the service proxy's, egress and host port tables", func() bool {
		tables := nftTables(t)
		return strings.Contains(tables, proxyTable(c)+"\n") && strings.Contains(tables, egress.TableName(bridge)+"\n") &&
			strings.Contains(tables, hostport.TableName(bridge)+"\n")
	})
	c.Stop()
	for _, table := range []string{proxyTable(c), egress.TableName(bridge), hostport.TableName(bridge)} {
		if tables := nftTables(t); strings.Contains(tables, table+"\n") {
			t.Fatalf("nftables table %s left:\n%s", table, tables)
		}
	}
	if addrs, _ := exec.Command("ip", "-4", "addr").CombinedOutput(); strings.Contains(string(addrs), bridge) {
		t.Fatalf("an address left on %s:\n%s", bridge, addrs)
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Fatalf("pod network bridge %s left", bridge)
	}
	if procs := pgrep(t, "leftover-check"); procs != "" {
		t.Fatalf("container process left: %s", procs)
	}
	if procs := pgrep(t, "--agent-dir "+c.DataDir); procs != "" {
		t.Fatalf("runtime process left: %s", procs)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), c.DataDir) {
		t.Fatalf("mounts left under %s", c.DataDir)
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/skiff/*/pod" + string(p.UID)); len(dirs) > 0 {
		t.Fatalf("cgroups left: %v", dirs)
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/skiff/" + agentCgroupID(c)); len(dirs) > 0 {
		t.Fatalf("node cgroup left: %v", dirs)
	}
}

// agentCgroupID is the last element of the node's cgroup root.
func agentCgroupID(c *framework.Cluster) string {
	return filepath.Base(daemon.CgroupRoot(filepath.Join(c.DataDir, "agent")))
}

// testServer is the static Go test server's image reference on the node.
const testServer = "registry.local/e2e/testserver:v1"

// importTestServer imports the test server image into the running node
// from a `docker save` tarball.
func importTestServer(t testing.TB, c *framework.Cluster) {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "testserver.tar")
	framework.SaveImage(t, framework.TestServerImage(t), testServer, tarPath)
	skiff(t, "images", "import", "--data-dir", c.DataDir, tarPath)
}

// TestHTTPServerPodFromTarball runs the static Go test server, imported
// from a `docker save` tarball into the running node, beside a busybox
// container that reaches it over the pod's shared loopback. The pod names
// no node: the scheduler places it.
func TestHTTPServerPodFromTarball(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: `+testServer+`
    imagePullPolicy: Never
  - name: client
    image: `+busybox+`
    imagePullPolicy: Never
    command: ["sh", "-c", "until wget -qO- http://127.0.0.1:8080/; do sleep 0.2; done; sleep 3600"]
`, "create", "-f", "-")
	waitPod(t, c, "web", 30*time.Second, "Running", func(p *corev1.Pod) bool { return allRunning(p) })
	if out := k.Must(t, c, "get", "pod", "web"); !strings.Contains(out, "2/2") || !strings.Contains(out, "Running") {
		t.Fatalf("get pod:\n%s", out)
	}
	// (Attempts before the server listens leave wget's "can't connect"
	// on stderr, which the log carries too.)
	framework.Eventually(t, 30*time.Second, "the client got the server's answer", func() bool {
		return strings.HasSuffix(k.Run(c, "", nil, "logs", "web", "-c", "client").Stdout, "hello from web\n")
	})
	if out := k.Must(t, c, "logs", "web", "-c", "server"); !strings.Contains(out, "serving on :8080") || !strings.Contains(out, "GET /") {
		t.Fatalf("server logs:\n%s", out)
	}
}

// TestPodsReachEachOtherByIP gives pods addresses from the node's pod
// range (a /24 of --cluster-cidr) and wires them to a bridge: a client pod
// reaches a server pod at its pod IP.
func TestPodsReachEachOtherByIP(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata:
  name: server
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: `+testServer+`
    imagePullPolicy: Never
`, "create", "-f", "-")
	srv := waitPod(t, c, "server", 30*time.Second, "Running with an IP", func(p *corev1.Pod) bool { return allRunning(p) && p.Status.PodIP != "" })
	node, err := c.Client().CoreV1().Nodes().Get(context.Background(), framework.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, podRange, err := net.ParseCIDR(node.Spec.PodCIDR)
	if err != nil || !podRange.Contains(net.ParseIP(srv.Status.PodIP)) || srv.Status.PodIP == srv.Status.HostIP {
		t.Fatalf("pod IP %s is not in the node's pod range %q", srv.Status.PodIP, node.Spec.PodCIDR)
	}
	k.MustIn(t, c, podYAML("client", busybox, "Never", "", "sh", "-c",
		"ip -4 addr show eth0; ip route; for i in $(seq 50); do wget -qO- http://"+srv.Status.PodIP+":8080/ && exit 0; sleep 0.2; done; exit 1"), "create", "-f", "-")
	cl := waitPod(t, c, "client", 30*time.Second, "finished", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	logs := k.Must(t, c, "logs", "client")
	if cl.Status.Phase != corev1.PodSucceeded || !strings.Contains(logs, "hello from server") {
		t.Fatalf("client could not reach %s:\n%s", srv.Status.PodIP, logs)
	}
	if !strings.Contains(logs, cl.Status.PodIP+"/") || !strings.Contains(logs, "default via") {
		t.Errorf("client's eth0 and default route:\n%s", logs)
	}
	// A finished pod gives its address back (its sandbox stops).
	framework.Eventually(t, 10*time.Second, "the finished client's address released", func() bool {
		_, err := os.Stat(filepath.Join(cri.IPAMDir(filepath.Join(c.DataDir, "agent", "runtime")), cl.Status.PodIP))
		return os.IsNotExist(err)
	})
	if out := k.Must(t, c, "get", "pod", "server", "-o", "wide"); !strings.Contains(out, srv.Status.PodIP) {
		t.Errorf("get pod -o wide:\n%s", out)
	}
	// A LoadBalancer Service gets the node's address as its ingress IP
	// (the pod's endpoint is the pod IP).
	k.Must(t, c, "label", "pod", "server", "app=server")
	k.Must(t, c, "expose", "pod", "server", "--type=LoadBalancer", "--port=80", "--target-port=8080")
	framework.Eventually(t, 20*time.Second, "LoadBalancer ingress and endpoints", func() bool {
		svc := k.Run(c, "", nil, "get", "svc", "server").Stdout
		ep := k.Run(c, "", nil, "get", "endpoints", "server").Stdout
		return strings.Contains(svc, srv.Status.HostIP) && strings.Contains(ep, srv.Status.PodIP+":8080")
	})
	// A hostNetwork pod is in the node's network: it sees the bridge and
	// reaches the server too.
	bridge := cri.Bridge(filepath.Join(c.DataDir, "agent", "runtime"))
	k.MustIn(t, c, podYAML("hostnet", busybox, "Never", "  hostNetwork: true\n", "sh", "-c",
		"ip link show "+bridge+" && wget -qO- http://"+srv.Status.PodIP+":8080/"), "create", "-f", "-")
	hp := waitPod(t, c, "hostnet", 30*time.Second, "finished", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if logs := k.Must(t, c, "logs", "hostnet"); hp.Status.Phase != corev1.PodSucceeded || !strings.Contains(logs, "hello from server") {
		t.Errorf("hostNetwork pod:\n%s", logs)
	}
}
