package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestExec drives exec, attach and cp with every installed kubectl
// against busybox pods on the real node: output, exit codes, stdin, a
// terminal (-it under a pty), files copied both ways (tar over exec) and
// attaching to a running container's output and stdin.
func TestExec(t *testing.T) {
	c := nodeCluster(t)
	k0 := framework.Kubectls(t)[0]
	k0.MustIn(t, c, podYAML("shell", busybox, "Always", "", "sleep", "3600"), "create", "-f", "-")
	k0.MustIn(t, c, podYAML("ticker", busybox, "Always", "", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"), "create", "-f", "-")
	k0.MustIn(t, c, podYAML("half", busybox, "Never", "  - name: done\n    image: "+busybox+"\n    imagePullPolicy: IfNotPresent\n    command: [\"true\"]\n", "sleep", "3600"), "create", "-f", "-")
	k0.MustIn(t, c, podYAML("envuser", busybox, "Always", "    env:\n    - name: GREETING\n      value: hello-from-the-spec\n    securityContext:\n      runAsUser: 1234\n      runAsGroup: 2345\n", "sleep", "3600"), "create", "-f", "-")
	waitPod(t, c, "shell", 30*time.Second, "Running", running)
	waitPod(t, c, "ticker", 30*time.Second, "Running", running)
	waitPod(t, c, "envuser", 30*time.Second, "Running", running)
	// Exec runs as the container does: its environment, user and group,
	// its cgroup.
	if out := k0.Must(t, c, "exec", "envuser", "--", "sh", "-c", "echo $GREETING $(id -u) $(id -g); cat /proc/self/cgroup; cat /proc/1/cgroup"); !strings.HasPrefix(out, "hello-from-the-spec 1234 2345\n") {
		t.Errorf("exec environment and user: %q", out)
	} else if lines := strings.Split(strings.TrimSpace(strings.SplitN(out, "\n", 2)[1]), "\n"); len(lines)%2 != 0 || strings.Join(lines[:len(lines)/2], "\n") != strings.Join(lines[len(lines)/2:], "\n") {
		t.Errorf("exec is not in the container's cgroups:\n%s", out)
	}
	waitPod(t, c, "half", 30*time.Second, "with one container done", func(p *corev1.Pod) bool {
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == "done" && s.State.Terminated != nil {
				return true
			}
		}
		return false
	})

	for _, k := range framework.Kubectls(t) {
		t.Run(k.Name, func(t *testing.T) {
			if out := k.Must(t, c, "exec", "shell", "--", "echo", "a", "b"); out != "a b\n" {
				t.Fatalf("exec echo: %q", out)
			}
			// kubectl 1.31 and newer speak WebSocket (v5.channel.k8s.io),
			// which the API server translates to SPDY for the kubelet;
			// older ones speak SPDY. Neither may need a fallback.
			// (skiff's own kubectl has no -v flag.)
			if k.Name != "skiff" {
				r0 := k.Run(c, "", nil, "exec", "-v=4", "shell", "--", "true")
				if r0.Err != nil || strings.Contains(r0.Stderr, "RemoteCommand fallback") {
					t.Fatalf("exec -v=4: %v\n%s", r0.Err, r0.Stderr)
				}
				if websocketKubectl(k) && !strings.Contains(r0.Stderr, "v5.channel.k8s.io") {
					t.Fatalf("kubectl %s did not negotiate v5.channel.k8s.io over WebSocket:\n%s", k.Name, r0.Stderr)
				}
			}
			// stdout and stderr both arrive, on their own streams.
			r := k.Run(c, "", nil, "exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
			var exit *exec.ExitError
			if !errors.As(r.Err, &exit) || exit.ExitCode() != 3 {
				t.Fatalf("exit code: %v\nstdout %q\nstderr %q", r.Err, r.Stdout, r.Stderr)
			}
			if r.Stdout != "out\n" || !strings.HasPrefix(r.Stderr, "err\n") {
				t.Fatalf("streams: stdout %q stderr %q", r.Stdout, r.Stderr)
			}
			input := "line one\nline two\n" + strings.Repeat("x", 100000) + "\n"
			if out := k.MustIn(t, c, input, "exec", "-i", "shell", "--", "cat"); out != input {
				t.Fatalf("exec -i cat: %d bytes back of %d", len(out), len(input))
			}
			if out := k.Run(c, "", nil, "exec", "shell", "-c", "nope", "--", "true"); out.Err == nil || !strings.Contains(out.Stderr, "container nope is not valid for pod shell") {
				t.Fatalf("exec into a missing container: %v %q", out.Err, out.Stderr)
			}
			if out := k.Run(c, "", nil, "exec", "missing", "--", "true"); out.Err == nil || !strings.Contains(out.Stderr, `pods "missing" not found`) {
				t.Fatalf("exec into a missing pod: %v %q", out.Err, out.Stderr)
			}
			// The kubelet's answer for a container that is not running
			// reaches kubectl through both proxies.
			// (kubectl 1.31's WebSocket client can lose a status that comes
			// right after the upgrade: "Unknown stream id", "closed all
			// streams"; later clients fixed that race.)
			if out := k.Run(c, "", nil, "exec", "half", "-c", "done", "--", "true"); out.Err == nil || !strings.Contains(out.Stderr, "container done in pod half is not running") && (k.Name != "1.31" || !strings.Contains(out.Stderr, "closed all streams")) {
				t.Fatalf("exec into an exited container: %v %q", out.Err, out.Stderr)
			}
			execTerminal(t, c, k)
			copyFiles(t, c, k)

			// Attach sees the running container's output.
			run := k.Start(t, c, "attach", "ticker")
			framework.Eventually(t, 20*time.Second, "attach output", func() bool {
				return regexp.MustCompile(`tick \d+\n`).MatchString(run.Output().Stdout)
			})
			run.Stop()
		})
	}
}

// TestAttachStdin attaches to a container that reads its stdin: the input
// reaches it, its answers come back, and the end of the input (stdinOnce)
// ends the container and with it the attach. Then `kubectl run -it`
// attaches to a container with a terminal.
func TestAttachStdin(t *testing.T) {
	c := nodeCluster(t)
	for _, k := range framework.Kubectls(t) {
		t.Run(k.Name, func(t *testing.T) {
			name := "reader-" + strings.ReplaceAll(k.Name, ".", "-")
			k.MustIn(t, c, podYAML(name, busybox, "Never", "    stdin: true\n    stdinOnce: true\n", "sh", "-c", "while read l; do echo got $l; done; echo done"), "create", "-f", "-")
			waitPod(t, c, name, 30*time.Second, "Running", running)
			out := k.MustIn(t, c, "hello\nworld\n", "attach", "-i", name)
			if !strings.Contains(out, "got hello\ngot world\ndone\n") {
				t.Fatalf("attach -i: %q", out)
			}
			runTerminal(t, c, k, "tty-"+strings.ReplaceAll(k.Name, ".", "-"))
		})
	}
}

// runTerminal runs `kubectl run -it --rm NAME -- sh` on a pseudo-terminal:
// kubectl creates a pod whose container has a TTY and attaches to it; the
// shell answers what is typed, and its exit ends the attach.
func runTerminal(t *testing.T, c *framework.Cluster, k framework.Kubectl, name string) {
	t.Helper()
	cmd := k.Command(c, "run", name, "--image="+busybox, "--image-pull-policy=Never", "--restart=Never", "-it", "--rm", "--", "sh")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out lockedBuffer
	go func() { _, _ = io.Copy(&out, tty) }()
	framework.Eventually(t, 30*time.Second, "kubectl run -it attached", func() bool {
		return strings.Contains(out.String(), "If you don't see a command prompt")
	})
	if _, err := tty.Write([]byte("echo hi-$((40+2)); stty size; exit\r")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("kubectl run -it did not end; output:\n%s", out.String())
	}
	// (kubectl's attach resizes to one row and column more and back, to
	// make the program redraw; the shell may see either size.)
	if s := out.String(); err != nil || !strings.Contains(s, "hi-42\r\n") || !strings.Contains(s, "40 120\r\n") && !strings.Contains(s, "41 121\r\n") {
		t.Fatalf("kubectl run -it: %v\n%q", err, s)
	}
}

// execTerminal runs `kubectl exec -it shell -- sh` on a pseudo-terminal,
// types a command line and reads the shell's answer.
func execTerminal(t *testing.T, c *framework.Cluster, k framework.Kubectl) {
	t.Helper()
	cmd := k.Command(c, "exec", "-it", "shell", "--", "sh")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 101})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out lockedBuffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, tty)
		close(copied)
	}()
	framework.Eventually(t, 20*time.Second, "shell prompt", func() bool { return strings.Contains(out.String(), "# ") })
	// The arithmetic is done by the shell, so the answer is not the echo
	// of what was typed; stty shows the terminal has the client's size.
	if _, err := tty.Write([]byte("echo hi-$((40+2)); stty size; exit 5\r")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("exec -it did not end; output:\n%s", out.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 5 {
		t.Fatalf("exec -it exit: %v\n%s", err, out.String())
	}
	tty.Close()
	<-copied
	if s := out.String(); !strings.Contains(s, "hi-42\r\n") || !strings.Contains(s, "33 101\r\n") {
		t.Fatalf("exec -it output:\n%q", s)
	}
}

// copyFiles copies a file into the pod and back with kubectl cp.
func copyFiles(t *testing.T, c *framework.Cluster, k framework.Kubectl) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, 300<<10)
	_, _ = rand.Read(data)
	src := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	remote := "/tmp/cp-" + strings.ReplaceAll(k.Name, ".", "-")
	k.Must(t, c, "cp", src, "shell:"+remote)
	sum := fmt.Sprintf("%x", sha256.Sum256(data))
	if out := k.Must(t, c, "exec", "shell", "--", "sha256sum", remote); !strings.HasPrefix(out, sum) {
		t.Fatalf("kubectl cp into the pod: sha256 %q, want %s", out, sum)
	}
	back := filepath.Join(dir, "out.bin")
	k.Must(t, c, "cp", "shell:"+remote, back)
	got, err := os.ReadFile(back)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("kubectl cp from the pod: %v, %d bytes of %d", err, len(got), len(data))
	}
}

// TestPortForward forwards local ports to a pod and to a Service with
// every installed kubectl: an HTTP request, and a 50 MiB download whose
// checksum is compared with the stream the server generated.
func TestPortForward(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k0 := framework.Kubectls(t)[0]
	k0.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: `+testServer+`
    imagePullPolicy: Never
    ports:
    - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
`, "create", "-f", "-")
	waitPod(t, c, "web", 30*time.Second, "Running", running)

	// A hostNetwork pod listens in the node's network namespace, on a
	// free port of the node's loopback.
	hostPort := framework.FreePort(t)
	k0.MustIn(t, c, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: hostweb
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: %s
    imagePullPolicy: Never
    env:
    - name: PORT
      value: "%d"
`, testServer, hostPort), "create", "-f", "-")
	waitPod(t, c, "hostweb", 30*time.Second, "Running", running)
	if body := httpGet(t, portForward(t, c, k0, "pod/hostweb", hostPort)+"/healthz"); body != "ok" {
		t.Fatalf("GET /healthz through port-forward to a hostNetwork pod: %q", body)
	}

	const size = 50 << 20
	want := downloadSum(size, "e2e")
	for _, k := range framework.Kubectls(t) {
		t.Run(k.Name, func(t *testing.T) {
			base := portForward(t, c, k, "pod/web", 8080)
			if body := httpGet(t, base+"/hostname"); body != "web" {
				t.Fatalf("GET /hostname through port-forward: %q", body)
			}
			resp, err := http.Get(base + "/download?bytes=" + fmt.Sprint(size) + "&seed=e2e")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || n != size || fmt.Sprintf("%x", h.Sum(nil)) != want {
				t.Fatalf("download through port-forward: %v, %d bytes, sha256 %x want %s", err, n, h.Sum(nil), want)
			}
			svc := portForward(t, c, k, "svc/web", 80)
			if body := httpGet(t, svc+"/"); body != "hello from web\n" {
				t.Fatalf("GET / through port-forward to the Service: %q", body)
			}
			// Nothing listens on 9: the runtime's error reaches kubectl.
			local := framework.FreePort(t)
			run := k.Start(t, c, "port-forward", "pod/web", fmt.Sprintf("%d:9", local))
			framework.Eventually(t, 20*time.Second, "port-forward listening", func() bool {
				return strings.Contains(run.Output().Stdout, "Forwarding from 127.0.0.1:")
			})
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", local)); err == nil {
				resp.Body.Close()
				t.Fatalf("GET through a port-forward to a closed port: %s", resp.Status)
			}
			framework.Eventually(t, 20*time.Second, "connection refused reported", func() bool {
				return strings.Contains(run.Output().Stderr, "connection refused")
			})
		})
	}
}

// websocketKubectl reports whether kubectl k uses WebSocket for exec,
// attach and port-forward by default (1.31 and newer, and skiff's own).
func websocketKubectl(k framework.Kubectl) bool {
	switch k.Name {
	case "1.27", "1.28", "1.29", "1.30":
		return false
	}
	return true
}

// portForward starts `kubectl port-forward target LOCAL:port` and returns
// the local base URL once it is forwarding; the test's end stops it.
func portForward(t *testing.T, c *framework.Cluster, k framework.Kubectl, target string, port int) string {
	t.Helper()
	local := framework.FreePort(t)
	args := []string{"port-forward", target, fmt.Sprintf("%d:%d", local, port)}
	if k.Name != "skiff" {
		args = append(args, "-v=4")
	}
	run := k.Start(t, c, args...)
	framework.Eventually(t, 20*time.Second, "port-forward listening", func() bool {
		return strings.Contains(run.Output().Stdout, "Forwarding from 127.0.0.1:")
	})
	t.Cleanup(func() {
		if k.Name == "skiff" {
			return
		}
		// The tunnel is made with the first connection.
		out := run.Stop().Stderr
		if strings.Contains(out, "fallback to secondary dialer") {
			t.Errorf("kubectl %s port-forward fell back to SPDY:\n%s", k.Name, out)
		}
		if websocketKubectl(k) && !strings.Contains(out, "Negotiation complete") && !strings.Contains(out, "negotiated protocol: portforward.k8s.io") {
			t.Errorf("kubectl %s port-forward did not tunnel over WebSocket:\n%s", k.Name, out)
		}
	})
	return fmt.Sprintf("http://127.0.0.1:%d", local)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s %q", url, err, resp.Status, b)
	}
	return string(b)
}

// downloadSum is the sha256 of the test server's /download stream.
func downloadSum(n int64, seed string) string {
	var key [32]byte
	copy(key[:], strings.Repeat(seed+"\x00", 32))
	h := sha256.New()
	_, _ = io.CopyN(h, mrand.NewChaCha8(key), n)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// lockedBuffer is a bytes.Buffer for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// logsOverWebSocket reads a pod's log as a WebSocket client asking for
// the binary.k8s.io protocol does (the conformance spec "should support
// retrieving logs from the container over websockets"), to the end.
func logsOverWebSocket(t *testing.T, c *framework.Cluster, pod string) string {
	t.Helper()
	cfg := c.RESTConfig()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Client().CoreV1().RESTClient().Get().Namespace("default").Resource("pods").Name(pod).SubResource("log").URL()
	u.Scheme = "wss"
	hdr := http.Header{}
	if cfg.BearerToken != "" {
		hdr.Set("Authorization", "Bearer "+cfg.BearerToken)
	}
	d := websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: []string{"binary.k8s.io"}, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(u.String(), hdr)
	if err != nil {
		t.Fatalf("websocket to %s: %v (response %v)", u, err, resp)
	}
	defer ws.Close()
	if ws.Subprotocol() != "binary.k8s.io" {
		t.Errorf("negotiated %q, want binary.k8s.io", ws.Subprotocol())
	}
	var out strings.Builder
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) && !errors.Is(err, io.EOF) {
				t.Logf("websocket read ended: %v", err)
			}
			return out.String()
		}
		out.Write(msg)
	}
}

// TestExecProtocols execs with client-go over each protocol a client may
// choose: WebSocket v5 (translated to SPDY by the API server), WebSocket
// v4 (the protocol of other language clients, which travels unchanged to
// the runtime's streaming server) and SPDY. Each carries stdin, stdout,
// stderr and the exit code. (v4 over WebSocket cannot close stdin, which is
// what v5 added, so the command reads a line rather than to EOF.)
func TestExecProtocols(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[0]
	k.MustIn(t, c, podYAML("shell", busybox, "Always", "", "sleep", "3600"), "create", "-f", "-")
	waitPod(t, c, "shell", 30*time.Second, "Running", running)
	// A command the image lacks fails with the runtime's reason.
	if r := k.Run(c, "", nil, "exec", "shell", "--", "nosuchcmd"); r.Err == nil || !strings.Contains(r.Stderr, "nosuchcmd") {
		t.Errorf("exec of a missing command: %v %q", r.Err, r.Stderr)
	} else {
		t.Logf("exec of a missing command: %s", r.Stderr)
	}
	req := c.Client().CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("shell").SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: []string{"sh", "-c", "head -n 1; echo err >&2; exit 7"}, Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	cfg := c.RESTConfig()
	v5, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		t.Fatal(err)
	}
	v4, err := remotecommand.NewWebSocketExecutorForProtocols(cfg, "GET", req.URL().String(), "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		t.Fatal(err)
	}
	// Logs come over WebSocket too.
	k.MustIn(t, c, podYAML("talker", busybox, "Always", "", "sh", "-c", "echo container is alive; sleep 3600"), "create", "-f", "-")
	waitPod(t, c, "talker", 30*time.Second, "Running", running)
	framework.Eventually(t, 20*time.Second, "the log over WebSocket", func() bool {
		return logsOverWebSocket(t, c, "talker") == "container is alive\n"
	})
	for name, ex := range map[string]remotecommand.Executor{"websocket-v5": v5, "websocket-v4": v4, "spdy": spdy} {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("in\n"), Stdout: &stdout, Stderr: &stderr})
		cancel()
		var exit utilexec.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 7 || stdout.String() != "in\n" || stderr.String() != "err\n" {
			t.Errorf("%s: %v, stdout %q, stderr %q", name, err, stdout.String(), stderr.String())
		}
	}
}
