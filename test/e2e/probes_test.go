package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// probePod is a one-container pod on the node with the given container
// fields (probes, ports, env...) indented under the container.
func probePod(name, image, labels, container string, command ...string) string {
	cmd := ""
	if len(command) > 0 {
		quoted := make([]string, len(command))
		for i, c := range command {
			quoted[i] = fmt.Sprintf("%q", c)
		}
		cmd = "    command: [" + strings.Join(quoted, ", ") + "]\n"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {%s}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: %s
    imagePullPolicy: Never
%s%s`, name, labels, framework.NodeName, image, cmd, container)
}

func containerReady(p *corev1.Pod) bool {
	return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
}

func restarts(p *corev1.Pod) int32 {
	if len(p.Status.ContainerStatuses) != 1 {
		return 0
	}
	return p.Status.ContainerStatuses[0].RestartCount
}

// podEvents lists the pod's events as "Type Reason Message" lines.
func podEvents(t *testing.T, c *framework.Cluster, name string) string {
	t.Helper()
	evs, err := c.Client().CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs.Items {
		fmt.Fprintf(&b, "%s %s %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

// TestProbes runs pods with each kind of probe on a real node: HTTP
// liveness restarts a container (events, RESTARTS), HTTP readiness takes a
// pod out of its Service and back, exec (and its timeout), tcpSocket and
// gRPC probes, and a startup probe that holds liveness and readiness back.
func TestProbes(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	create := func(yaml string) { k.MustIn(t, c, yaml, "create", "-f", "-") }
	httpPort := "    ports:\n    - name: http\n      containerPort: 8080\n"
	create(probePod("live", testServer, "", httpPort+`    livenessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
      failureThreshold: 2
`))
	create(probePod("ready", testServer, "app: ready", httpPort+`    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      initialDelaySeconds: 3
      periodSeconds: 1
      failureThreshold: 1
`))
	create(`apiVersion: v1
kind: Service
metadata:
  name: ready
spec:
  selector: {app: ready}
  ports:
  - port: 80
    targetPort: 8080
`)
	create(probePod("exec", busybox, "", `    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 1
`, "sh", "-c", "touch /tmp/healthy; sleep 3; rm -f /tmp/healthy; sleep 3600"))
	create(probePod("exec-timeout", busybox, "", `    readinessProbe:
      exec: {command: [sleep, "5"]}
      timeoutSeconds: 1
      periodSeconds: 2
`, "sleep", "3600"))
	create(probePod("tcp-ok", testServer, "", httpPort+`    readinessProbe:
      tcpSocket: {port: http}
      periodSeconds: 1
`))
	create(probePod("tcp-closed", testServer, "", `    readinessProbe:
      tcpSocket: {port: 9999}
      periodSeconds: 1
`))
	create(probePod("grpc", testServer, "", `    env: [{name: GRPC_PORT, value: "9090"}]
    readinessProbe:
      grpc: {port: 9090}
      periodSeconds: 1
      failureThreshold: 1
`))
	// Liveness and readiness would fail (and restart the container) until
	// /tmp/started exists; the startup probe holds them back until then.
	create(probePod("slow-start", busybox, "", `    startupProbe:
      exec: {command: [cat, /tmp/started]}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec: {command: [cat, /tmp/started]}
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      exec: {command: [cat, /tmp/started]}
      periodSeconds: 1
`, "sh", "-c", "sleep 5; touch /tmp/started; sleep 3600"))
	create(probePod("never-starts", busybox, "", `    startupProbe:
      exec: {command: [cat, /nonexistent]}
      periodSeconds: 1
      failureThreshold: 2
`, "sleep", "3600"))

	t.Run("readiness", func(t *testing.T) {
		// Running but not ready while the probe has not passed.
		waitPod(t, c, "ready", 60*time.Second, "Running and not yet ready", func(p *corev1.Pod) bool { return running(p) && !containerReady(p) })
		if out := k.Must(t, c, "get", "pod", "ready"); !regexp.MustCompile(`ready\s+0/1\s+Running`).MatchString(out) {
			t.Errorf("before the first probe:\n%s", out)
		}
		p := waitPod(t, c, "ready", 30*time.Second, "ready", containerReady)
		ip := p.Status.PodIP
		inEndpoints := func() bool {
			ep := k.Run(c, "", nil, "get", "endpoints", "ready", "-o", "jsonpath={.subsets[*].addresses[*].ip}").Stdout
			return strings.Contains(" "+ep+" ", " "+ip+" ")
		}
		framework.Eventually(t, 30*time.Second, "the ready pod in the Service's endpoints", inEndpoints)
		if _, err := get("http://" + ip + ":8080/fail-health"); err != nil {
			t.Fatal(err)
		}
		waitPod(t, c, "ready", 30*time.Second, "not ready", func(p *corev1.Pod) bool {
			cond := podCondition(p, corev1.PodReady)
			return !containerReady(p) && cond != nil && cond.Status == corev1.ConditionFalse && running(p)
		})
		framework.Eventually(t, 30*time.Second, "the unready pod out of the endpoints", func() bool { return !inEndpoints() })
		// Every installed kubectl shows it so.
		for _, k := range framework.Kubectls(t) {
			if out := k.Must(t, c, "get", "pod", "ready"); !regexp.MustCompile(`ready\s+0/1\s+Running\s+0\s`).MatchString(out) {
				t.Errorf("kubectl %s, failing readiness:\n%s", k.Name, out)
			}
			if out := k.Must(t, c, "get", "endpoints", "ready"); strings.Contains(out, ip) {
				t.Errorf("kubectl %s, endpoints of the unready pod:\n%s", k.Name, out)
			}
		}
		if _, err := get("http://" + ip + ":8080/heal"); err != nil {
			t.Fatal(err)
		}
		waitPod(t, c, "ready", 30*time.Second, "ready again", containerReady)
		framework.Eventually(t, 30*time.Second, "the pod back in the endpoints", inEndpoints)
		if out := k.Must(t, c, "get", "pod", "ready"); !regexp.MustCompile(`ready\s+1/1\s+Running\s+0\s`).MatchString(out) {
			t.Errorf("ready again:\n%s", out)
		}
		if ev := podEvents(t, c, "ready"); !strings.Contains(ev, "Warning Unhealthy Readiness probe failed: HTTP probe failed with statuscode: 500") {
			t.Errorf("events:\n%s", ev)
		}
	})

	t.Run("http liveness", func(t *testing.T) {
		p := waitPod(t, c, "live", 30*time.Second, "Running", running)
		for n := int32(1); n <= 2; n++ {
			// Each container fails from its /fail-health on: the restarted
			// one is healthy until told otherwise.
			framework.Eventually(t, 30*time.Second, "/fail-health answered", func() bool {
				_, err := get("http://" + p.Status.PodIP + ":8080/fail-health")
				return err == nil
			})
			p = waitPod(t, c, "live", 60*time.Second, fmt.Sprintf("restarted %d times and running", n), func(p *corev1.Pod) bool {
				return restarts(p) == n && running(p)
			})
		}
		// Every installed kubectl shows the restarts and the probe's events.
		for _, k := range framework.Kubectls(t) {
			if out := k.Must(t, c, "get", "pod", "live"); !regexp.MustCompile(`live\s+1/1\s+Running\s+2\s`).MatchString(out) {
				t.Errorf("kubectl %s get pod:\n%s", k.Name, out)
			}
			desc := k.Must(t, c, "describe", "pod", "live")
			for _, want := range []string{
				"Liveness probe failed: HTTP probe failed with statuscode: 500",
				"Container main failed liveness probe, will be restarted",
				"Restart Count:  2",
			} {
				if !strings.Contains(desc, want) {
					t.Errorf("kubectl %s describe pod lacks %q:\n%s", k.Name, want, desc)
				}
			}
			if !regexp.MustCompile(`Unhealthy\s+.*Liveness probe failed`).MatchString(desc) || !regexp.MustCompile(`Killing\s+.*failed liveness probe`).MatchString(desc) {
				t.Errorf("kubectl %s describe pod events:\n%s", k.Name, desc)
			}
		}
		if logs := k.Must(t, c, "logs", "live", "--previous"); !strings.Contains(logs, "GET /healthz kube-probe/1.33") {
			t.Errorf("probe requests in the logs:\n%s", logs)
		}
	})

	t.Run("exec liveness", func(t *testing.T) {
		waitPod(t, c, "exec", 60*time.Second, "restarted", func(p *corev1.Pod) bool { return restarts(p) >= 1 })
		ev := podEvents(t, c, "exec")
		for _, want := range []string{
			"Warning Unhealthy Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory",
			"Normal Killing Container main failed liveness probe, will be restarted",
		} {
			if !strings.Contains(ev, want) {
				t.Errorf("events lack %q:\n%s", want, ev)
			}
		}
	})

	t.Run("exec timeout", func(t *testing.T) {
		waitPod(t, c, "exec-timeout", 30*time.Second, "Running", running)
		framework.Eventually(t, 30*time.Second, "a timed-out exec probe", func() bool {
			return strings.Contains(podEvents(t, c, "exec-timeout"), `Warning Unhealthy Readiness probe failed: command timed out: "sleep 5" timed out after 1s`)
		})
		if p := waitPod(t, c, "exec-timeout", time.Second, "Running", running); containerReady(p) {
			t.Error("ready although its probe times out")
		}
	})

	t.Run("tcpSocket and grpc", func(t *testing.T) {
		waitPod(t, c, "tcp-ok", 30*time.Second, "ready", containerReady)
		waitPod(t, c, "grpc", 30*time.Second, "ready", containerReady)
		p := waitPod(t, c, "tcp-closed", 30*time.Second, "Running", running)
		framework.Eventually(t, 30*time.Second, "a failed TCP readiness probe", func() bool {
			return strings.Contains(podEvents(t, c, "tcp-closed"), "Readiness probe failed: dial tcp "+p.Status.PodIP+":9999: connect: connection refused")
		})
		if p := waitPod(t, c, "tcp-closed", time.Second, "Running", running); containerReady(p) {
			t.Error("ready with nothing listening on its probe's port")
		}
		g := waitPod(t, c, "grpc", time.Second, "Running", running)
		if _, err := get("http://" + g.Status.PodIP + ":8080/fail-health"); err != nil {
			t.Fatal(err)
		}
		waitPod(t, c, "grpc", 30*time.Second, "not ready", func(p *corev1.Pod) bool { return !containerReady(p) })
		if ev := podEvents(t, c, "grpc"); !strings.Contains(ev, `Readiness probe failed: service unhealthy (responded with "NOT_SERVING")`) {
			t.Errorf("events:\n%s", ev)
		}
	})

	t.Run("startup", func(t *testing.T) {
		p := waitPod(t, c, "slow-start", 60*time.Second, "started and ready", containerReady)
		cs := p.Status.ContainerStatuses[0]
		if cs.RestartCount != 0 || cs.Started == nil || !*cs.Started {
			t.Errorf("slow-start: restarts %d, started %v", cs.RestartCount, cs.Started)
		}
		ev := podEvents(t, c, "slow-start")
		if !strings.Contains(ev, "Startup probe failed") || strings.Contains(ev, "Liveness probe failed") || strings.Contains(ev, "Readiness probe failed") {
			t.Errorf("slow-start events (startup failures only):\n%s", ev)
		}
		waitPod(t, c, "never-starts", 60*time.Second, "restarted", func(p *corev1.Pod) bool { return restarts(p) >= 1 })
		ev = podEvents(t, c, "never-starts")
		if !strings.Contains(ev, "Normal Killing Container main failed startup probe, will be restarted") {
			t.Errorf("never-starts events:\n%s", ev)
		}
		if p := waitPod(t, c, "never-starts", time.Second, "any", func(*corev1.Pod) bool { return true }); containerReady(p) {
			t.Error("never-starts is ready")
		}
	})
}

// TestLifecycleHooks runs postStart and preStop hooks on a real node: an
// exec postStart the container waits for, exec and httpGet preStop hooks
// that run when the pod is deleted (one writes to the host, the other
// calls a server pod), a failing preStop, and a failing postStart that
// kills the container.
func TestLifecycleHooks(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	hostDir := filepath.Join(t.TempDir(), "hooks")
	k.MustIn(t, c, probePod("server", testServer, "", ""), "create", "-f", "-")
	srv := waitPod(t, c, "server", 30*time.Second, "Running with an IP", func(p *corev1.Pod) bool { return running(p) && p.Status.PodIP != "" })
	k.MustIn(t, c, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: hooks
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 10
  volumes:
  - name: host
    hostPath: {path: %s, type: DirectoryOrCreate}
  containers:
  - name: main
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, "until [ -f /tmp/poststart ]; do sleep 0.1; done; cat /tmp/poststart; sleep 3600"]
    volumeMounts: [{name: host, mountPath: /host}]
    lifecycle:
      postStart:
        exec: {command: [sh, -c, "echo postStart ran > /tmp/poststart"]}
      preStop:
        exec: {command: [sh, -c, "echo preStop ran > /host/prestop"]}
  - name: web
    image: %s
    imagePullPolicy: Never
    env: [{name: PORT, value: "8081"}]
    lifecycle:
      preStop:
        httpGet: {host: %s, port: 8080, path: /prestop-hook}
  - name: failing
    image: %s
    imagePullPolicy: Never
    command: [sleep, "3600"]
    lifecycle:
      preStop:
        exec: {command: [sh, -c, "exit 1"]}
`, framework.NodeName, hostDir, busybox, testServer, srv.Status.PodIP, busybox), "create", "-f", "-")
	waitPod(t, c, "hooks", 30*time.Second, "Running", allRunning)
	framework.Eventually(t, 30*time.Second, "main saw the postStart hook's file", func() bool {
		return strings.Contains(k.Run(c, "", nil, "logs", "hooks", "-c", "main").Stdout, "postStart ran")
	})
	k.Must(t, c, "delete", "pod", "hooks", "--wait=true", "--timeout=60s")
	b, err := os.ReadFile(filepath.Join(hostDir, "prestop"))
	if err != nil || string(b) != "preStop ran\n" {
		t.Errorf("preStop exec hook's file: %q %v", b, err)
	}
	if logs := k.Must(t, c, "logs", "server"); !strings.Contains(logs, "GET /prestop-hook kube-lifecycle/1.33") {
		t.Errorf("the httpGet preStop hook did not reach the server:\n%s", logs)
	}
	if ev := podEvents(t, c, "hooks"); !strings.Contains(ev, "Warning FailedPreStopHook PreStopHook failed") {
		t.Errorf("events:\n%s", ev)
	}

	// A failing postStart hook kills the container, which restarts.
	k.MustIn(t, c, probePod("bad-hook", busybox, "", `    lifecycle:
      postStart:
        exec: {command: [sh, -c, "echo oops; exit 3"]}
`, "sleep", "3600"), "create", "-f", "-")
	waitPod(t, c, "bad-hook", 60*time.Second, "restarted", func(p *corev1.Pod) bool { return restarts(p) >= 1 })
	ev := podEvents(t, c, "bad-hook")
	for _, want := range []string{
		`Warning FailedPostStartHook Exec lifecycle hook ([sh -c echo oops; exit 3]) for Container "main" in Pod "bad-hook_default(`,
		"exited with 3",
		"Normal Killing FailedPostStartHook",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
}
