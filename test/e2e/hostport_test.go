package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// httpGetHostname is the request `testserver dial tcp` sends for a hostname.
const httpGetHostname = "GET /hostname HTTP/1.0\r\n\r\n"

// freeHostPort returns a port free for both TCP and UDP on the machine
// (other clusters may share it).
func freeHostPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for TCP and UDP")
	return 0
}

// testServerPod is a pod of the test server; extra is YAML under the
// container (indented 4), spec is YAML under spec (indented 2).
func testServerPod(name, spec, extra string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  labels:
    app: ` + name + `
spec:
  terminationGracePeriodSeconds: 1
` + spec + `  containers:
  - name: server
    image: ` + testServer + `
    imagePullPolicy: Never
` + extra
}

// dialer runs `testserver dial` in pod and reports its output (stdout
// and stderr) and whether it got an answer.
func dialer(c *framework.Cluster, k framework.Kubectl, pod string) func(network, addr, payload string) (string, bool) {
	return func(network, addr, payload string) (string, bool) {
		r := k.Run(c, "", nil, "exec", pod, "--", "/testserver", "dial", network, addr, payload)
		return r.Stdout + r.Stderr, r.Err == nil
	}
}

// TestServiceSamePortTCPAndUDP mirrors the conformance spec "Services
// should serve endpoints on same port and different protocols": one
// Service port 80 over TCP and port 80 over UDP reach the pod serving
// both; dropping one protocol from the Service stops only that one.
func TestServiceSamePortTCPAndUDP(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	k.MustIn(t, c, testServerPod("multi", "", `    env:
    - {name: PORT, value: "80"}
    - {name: UDP_PORT, value: "80"}
    ports:
    - {name: tcp-port, containerPort: 80, protocol: TCP}
    - {name: udp-port, containerPort: 80, protocol: UDP}
`), "create", "-f", "-")
	k.MustIn(t, c, `apiVersion: v1
kind: Service
metadata:
  name: multiprotocol
spec:
  selector: {app: multi}
  ports:
  - {name: tcp-port, port: 80, targetPort: 80, protocol: TCP}
  - {name: udp-port, port: 80, targetPort: 80, protocol: UDP}
`, "create", "-f", "-")
	k.MustIn(t, c, testServerPod("client", "", ""), "create", "-f", "-")
	waitPod(t, c, "multi", 60*time.Second, "Running", running)
	waitPod(t, c, "client", 60*time.Second, "Running", running)
	svc, err := c.Client().CoreV1().Services("default").Get(ctx, "multiprotocol", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	dial := dialer(c, k, "client")
	answers := func(network string) bool {
		payload := "hostName\n"
		if network == "tcp" {
			payload = httpGetHostname
		}
		out, ok := dial(network, addr, payload)
		return ok && strings.Contains(out, "multi")
	}
	// refused: a protocol the Service lacks is rejected at the cluster IP
	// (as upstream's cluster-ips-check), not sent off the node to
	// whatever answers there.
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last dial: %s", last)
		}
	})
	refused := func(network string) bool {
		out, ok := dial(network, addr, httpGetHostname)
		last = out
		return !ok && strings.Contains(out, "refused")
	}
	framework.Eventually(t, 30*time.Second, "the pod answers "+addr+" over TCP", func() bool { return answers("tcp") })
	framework.Eventually(t, 30*time.Second, "the pod answers "+addr+" over UDP", func() bool { return answers("udp") })

	k.Must(t, c, "patch", "svc", "multiprotocol", "--type=json", "-p", `[{"op":"remove","path":"/spec/ports/1"}]`)
	framework.Eventually(t, 30*time.Second, "UDP to "+addr+" is refused once the Service has only TCP", func() bool { return refused("udp") })
	if !answers("tcp") {
		t.Errorf("TCP to %s stopped with the UDP port's removal", addr)
	}
	k.Must(t, c, "patch", "svc", "multiprotocol", "--type=json", "-p",
		`[{"op":"replace","path":"/spec/ports","value":[{"name":"udp-port","port":80,"targetPort":80,"protocol":"UDP"}]}]`)
	framework.Eventually(t, 30*time.Second, "UDP to "+addr+" again with a UDP-only Service", func() bool { return answers("udp") })
	framework.Eventually(t, 30*time.Second, "TCP to "+addr+" is refused with a UDP-only Service", func() bool { return refused("tcp") })
}

// TestHostPortsByHostIPAndProtocol mirrors the conformance spec "HostPort
// validates that there is no conflict between pods with same hostPort but
// different hostIP and protocol": three pods share one host port, on
// 127.0.0.1 over TCP, on the node IP over TCP and on the node IP over
// UDP; the scheduler places all three on the one node, and from the node
// each address and protocol reaches its own pod.
func TestHostPortsByHostIPAndProtocol(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	node, err := c.Client().CoreV1().Nodes().Get(ctx, framework.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodeIP := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = a.Address
		}
	}
	if nodeIP == "" || nodeIP == "127.0.0.1" {
		t.Skipf("node has no InternalIP other than loopback: %v", node.Status.Addresses)
	}
	port := freeHostPort(t)
	for _, p := range []struct{ name, ip, proto string }{
		{"pod1", "127.0.0.1", "TCP"}, {"pod2", nodeIP, "TCP"}, {"pod3", nodeIP, "UDP"},
	} {
		k.MustIn(t, c, testServerPod(p.name, "", fmt.Sprintf(`    env:
    - {name: UDP_PORT, value: "8081"}
    ports:
    - {containerPort: %d, hostPort: %d, hostIP: %q, protocol: %s}
`, map[string]int{"TCP": 8080, "UDP": 8081}[p.proto], port, p.ip, p.proto)), "create", "-f", "-")
	}
	for _, name := range []string{"pod1", "pod2", "pod3"} {
		// Running means scheduled: the NodePorts filter let it share the port.
		waitPod(t, c, name, 60*time.Second, "Running", running)
	}
	// A host-network client, as upstream's e2e-host-exec pod.
	k.MustIn(t, c, testServerPod("hostexec", "  hostNetwork: true\n", fmt.Sprintf(`    env:
    - {name: PORT, value: "%d"}
`, freeHostPort(t))), "create", "-f", "-")
	waitPod(t, c, "hostexec", 60*time.Second, "Running", running)
	dial := dialer(c, k, "hostexec")
	for _, tc := range []struct{ network, addr, payload, want string }{
		{"tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), httpGetHostname, "pod1"},
		{"tcp", net.JoinHostPort(nodeIP, fmt.Sprint(port)), httpGetHostname, "pod2"},
		{"udp", net.JoinHostPort(nodeIP, fmt.Sprint(port)), "hostname\n", "pod3"},
	} {
		var out string
		framework.Eventually(t, 30*time.Second, fmt.Sprintf("%s %s reaches %s", tc.network, tc.addr, tc.want), func() bool {
			var ok bool
			out, ok = dial(tc.network, tc.addr, tc.payload)
			return ok && strings.Contains(out, tc.want)
		})
	}
	// As upstream's curl --interface <node IP>: from the node's address to
	// 127.0.0.1 (this test runs on the node).
	framework.Eventually(t, 30*time.Second, "127.0.0.1 from the node IP reaches pod1", func() bool {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(nodeIP)}, Timeout: 3 * time.Second}
		conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
		if err != nil {
			return false
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Write([]byte(httpGetHostname)); err != nil {
			return false
		}
		b, _ := io.ReadAll(conn)
		return strings.Contains(string(b), "pod1")
	})
	// A pod bound to the node past the scheduler, asking for a host port
	// a running pod holds, is rejected by the kubelet.
	k.MustIn(t, c, testServerPod("pod4", "  nodeName: "+framework.NodeName+"\n", fmt.Sprintf(`    ports:
    - {containerPort: 8080, hostPort: %d, protocol: TCP}
`, port)), "create", "-f", "-")
	if p := waitPod(t, c, "pod4", 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed }); p.Status.Reason != "NodePorts" {
		t.Fatalf("pod with a taken host port failed with reason %q: %s", p.Status.Reason, p.Status.Message)
	}
	// Deleting a pod withdraws its host port.
	k.Must(t, c, "delete", "pod", "pod2", "--wait")
	framework.Eventually(t, 30*time.Second, "the node IP's TCP host port is withdrawn", func() bool {
		_, ok := dial("tcp", net.JoinHostPort(nodeIP, fmt.Sprint(port)), httpGetHostname)
		return !ok
	})
}
