package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/skiff/skiff/test/e2e/framework"
)

// BenchmarkStreaming measures exec round trips and port-forward
// throughput on one node (run it alone, with -benchtime 1x):
//
//	go test ./test/e2e -run '^$' -bench Streaming -benchtime 1x
//
// Exec latency is the wall time of `exec shell -- true`: through kubectl
// (a new process each time, WebSocket for 1.33, SPDY for 1.27) and
// through client-go's executors in process (the raw API call: the same
// connection setup, stream negotiation and exit status, without kubectl's
// start-up and discovery). Port-forward throughput is a 256 MiB HTTP
// download from the test server through `kubectl port-forward`.
func BenchmarkStreaming(b *testing.B) {
	c := nodeCluster(b)
	importTestServer(b, c)
	kubectls := map[string]framework.Kubectl{}
	for _, k := range framework.Kubectls(b) {
		kubectls[k.Name] = k
	}
	k := kubectls["1.33"]
	if k.Name == "" {
		b.Skip("kubectl 1.33 is not installed")
	}
	k.MustIn(b, c, podYAML("shell", busybox, "Always", "", "sleep", "3600"), "create", "-f", "-")
	k.MustIn(b, c, `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: server
    image: `+testServer+`
    imagePullPolicy: Never
`, "create", "-f", "-")
	waitPod(b, c, "shell", 30*time.Second, "Running", running)
	waitPod(b, c, "web", 30*time.Second, "Running", running)

	req := c.Client().CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("shell").SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: []string{"true"}, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	cfg := c.RESTConfig()
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		b.Fatal(err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		b.Fatal(err)
	}
	stream := func(ex remotecommand.Executor) func() error {
		return func() error {
			var out bytes.Buffer
			return ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &out, Stderr: &out})
		}
	}
	kubectl := func(k framework.Kubectl) func() error {
		return func() error {
			if r := k.Run(c, "", nil, "exec", "shell", "--", "true"); r.Err != nil {
				return fmt.Errorf("%v: %s", r.Err, r.Stderr)
			}
			return nil
		}
	}
	b.ResetTimer()
	for range b.N {
		for _, m := range []struct {
			name string
			n    int
			run  func() error
		}{
			{"api-websocket", 200, stream(ws)},
			{"api-spdy", 200, stream(spdy)},
			{"kubectl-1.33", 50, kubectl(k)},
			{"kubectl-1.27", 50, kubectl(kubectls["1.27"])},
		} {
			if m.name == "kubectl-1.27" && kubectls["1.27"].Name == "" {
				continue
			}
			lat := make([]time.Duration, 0, m.n)
			for range m.n {
				t0 := time.Now()
				if err := m.run(); err != nil {
					b.Fatalf("%s: %v", m.name, err)
				}
				lat = append(lat, time.Since(t0))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(ms(pct(lat, 0.5)), m.name+"-p50-ms")
			b.ReportMetric(ms(pct(lat, 0.99)), m.name+"-p99-ms")
		}
		for _, name := range []string{"1.33", "1.27"} {
			k, ok := kubectls[name]
			if !ok {
				continue
			}
			rates := make([]float64, 0, 3)
			for range 3 {
				rates = append(rates, downloadRate(b, c, k, 256<<20))
			}
			sort.Float64s(rates)
			b.ReportMetric(rates[1], "portforward-"+name+"-MB/s")
		}
	}
}

// downloadRate forwards a local port to the web pod with kubectl k and
// returns the rate (MB/s, 10^6 bytes) of an n-byte download through it.
func downloadRate(b *testing.B, c *framework.Cluster, k framework.Kubectl, n int64) float64 {
	b.Helper()
	local := framework.FreePort(b)
	run := k.Start(b, c, "port-forward", "pod/web", fmt.Sprintf("%d:8080", local))
	defer run.Stop()
	framework.Eventually(b, 20*time.Second, "port-forward listening", func() bool {
		return strings.Contains(run.Output().Stdout, "Forwarding from 127.0.0.1:")
	})
	t0 := time.Now()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/download?bytes=%d&seed=bench", local, n))
	if err != nil {
		b.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != n {
		b.Fatalf("download: %v, %d of %d bytes", err, got, n)
	}
	return float64(n) / 1e6 / time.Since(t0).Seconds()
}
