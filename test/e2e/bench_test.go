package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/test/e2e/framework"
)

// Benchmarks of the node agent. They start real clusters and run real
// containers, so run them one at a time with -benchtime 1x:
//
//	go test ./test/e2e -run '^$' -bench PodStartup -benchtime 1x
//	go test ./test/e2e -run '^$' -bench AgentIdleRSS -benchtime 1x

// BenchmarkPodStartup measures create-to-Running latency (image present,
// client time of the create request to the watch event that shows every
// container running) for 100 pods on one node: first one at a time, then
// all 100 created at once.
func BenchmarkPodStartup(b *testing.B) {
	const pods = 100
	c := nodeCluster(b)
	// One warm-up pod pays for first-use costs (image unpacking).
	startPods(b, c, "warm", 1, 1)
	deletePods(b, c)
	b.ResetTimer()
	for range b.N {
		seq := startPods(b, c, "seq", pods, 1)
		deletePods(b, c)
		rt := runtimePid(b, filepath.Join(c.DataDir, "agent"))
		srv0, rt0 := framework.CPUSeconds(c.Pid()), framework.CPUSeconds(rt)
		t0 := time.Now()
		burst := startPods(b, c, "burst", pods, pods)
		all := time.Since(t0)
		b.ReportMetric(framework.CPUSeconds(c.Pid())-srv0, "burst-server-cpu-s")
		b.ReportMetric(framework.CPUSeconds(rt)-rt0, "burst-runtime-cpu-s")
		// What 100 idle pods cost the node, per second.
		time.Sleep(2 * time.Second)
		srv0, rt0 = framework.CPUSeconds(c.Pid()), framework.CPUSeconds(rt)
		time.Sleep(10 * time.Second)
		b.ReportMetric((framework.CPUSeconds(c.Pid())-srv0)/10, "idle-100-server-cpu")
		b.ReportMetric((framework.CPUSeconds(rt)-rt0)/10, "idle-100-runtime-cpu")
		deletePods(b, c)
		b.ReportMetric(ms(pct(seq, 0.5)), "seq-p50-ms")
		b.ReportMetric(ms(pct(seq, 0.99)), "seq-p99-ms")
		b.ReportMetric(ms(pct(burst, 0.5)), "burst-p50-ms")
		b.ReportMetric(ms(pct(burst, 0.99)), "burst-p99-ms")
		b.ReportMetric(ms(all), "all-100-running-ms")
	}
}

// startPods creates n pods named prefix-i, at most parallel at a time in
// flight, and returns each one's create-to-Running latency.
func startPods(b testing.TB, c *framework.Cluster, prefix string, n, parallel int) []time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs := c.Client()
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=" + prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	ran := map[string]time.Duration{}
	runningCh := make(chan string, n)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || !allRunning(p) {
				continue
			}
			now := time.Now()
			mu.Lock()
			if _, seen := ran[p.Name]; !seen {
				if t0, ok := created[p.Name]; ok {
					ran[p.Name] = now.Sub(t0)
					runningCh <- p.Name
				}
			}
			mu.Unlock()
		}
	}()
	sem := make(chan struct{}, parallel)
	for i := range n {
		sem <- struct{}{}
		name := prefix + "-" + strconv.Itoa(i)
		pod := benchPod(name, prefix)
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		go func() {
			// The slot frees when some pod runs; with parallel 1 that is
			// this one.
			select {
			case <-runningCh:
			case <-ctx.Done():
			}
			<-sem
		}()
	}
	for range parallel {
		sem <- struct{}{}
	}
	if ctx.Err() != nil {
		b.Fatalf("pods not Running in time: %d of %d", len(ran), n)
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]time.Duration, 0, n)
	for _, d := range ran {
		out = append(out, d)
	}
	return out
}

func allRunning(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil {
			return false
		}
	}
	return true
}

func benchPod(name, group string) *corev1.Pod {
	grace := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": group}},
		Spec: corev1.PodSpec{
			NodeName:                      framework.NodeName,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "main", Image: busybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

// deletePods deletes every pod in default and waits until they are gone.
func deletePods(b testing.TB, c *framework.Cluster) {
	b.Helper()
	ctx := context.Background()
	cs := c.Client()
	if err := cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	framework.Eventually(b, 2*time.Minute, "pods deleted", func() bool {
		l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0
	})
}

// BenchmarkAgentIdleRSS joins `skiff agent` to a server without its own
// agent and reports the resident memory of the agent and of its runtime
// process once the node is Ready and idle.
func BenchmarkAgentIdleRSS(b *testing.B) {
	c := framework.StartCluster(b, framework.Options{})
	dir := filepath.Join(b.TempDir(), "agent")
	a := framework.StartProcess(b, "agent", "--server", c.URL(), "--token", c.Token(b), "--data-dir", dir, "--node-name", "idle", "--cleanup-on-exit")
	framework.Eventually(b, 20*time.Second, "agent node Ready", func() bool {
		n, err := c.Client().CoreV1().Nodes().Get(context.Background(), "idle", metav1.GetOptions{})
		return err == nil && nodeReady(n)
	})
	for range b.N {
		time.Sleep(15 * time.Second) // past start-up and a few heartbeats
		rt := runtimePid(b, filepath.Join(dir, "agent"))
		b.ReportMetric(rssMB(b, a.Pid(), "VmRSS"), "agent-rss-MB")
		b.ReportMetric(rssMB(b, a.Pid(), "RssAnon"), "agent-anon-MB")
		b.ReportMetric(rssMB(b, rt, "VmRSS"), "runtime-rss-MB")
		b.ReportMetric(rssMB(b, rt, "RssAnon"), "runtime-anon-MB")
	}
}

func runtimePid(b testing.TB, agentDir string) int {
	b.Helper()
	out := pgrep(b, "--agent-dir "+agentDir)
	pid, err := strconv.Atoi(strings.Fields(out + " x")[0])
	if err != nil {
		b.Fatalf("runtime process of %s: %q", agentDir, out)
	}
	return pid
}

// rssMB reads a memory field (VmRSS, RssAnon) of /proc/<pid>/status in MB.
func rssMB(b testing.TB, pid int, field string) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkDeploymentRollout rolls a 100-replica Deployment (maxSurge and
// maxUnavailable 25%) from v1 to v2 on the real node: every new pod is a
// container started, every old one stopped. SKIFF_ROLLOUT_CHART=1 prints
// ready old/new pods over time.
func BenchmarkDeploymentRollout(b *testing.B) {
	const replicas = 100
	c := nodeClusterWith(b, []string{"registry.local/kubia:v1", "registry.local/kubia:v2"})
	k := framework.Kubectls(b)[len(framework.Kubectls(b))-1]
	ctx := context.Background()
	for i := range b.N {
		from, to := "registry.local/kubia:v1", "registry.local/kubia:v2"
		if i%2 == 1 {
			from, to = to, from
		}
		if i == 0 {
			k.MustIn(b, c, strings.Replace(strings.Replace(kubiaDeployment, "replicas: 3", fmt.Sprintf("replicas: %d", replicas), 1),
				"registry.local/kubia:v1", from, 1), "create", "-f", "-")
			if r := k.Run(c, "", nil, "rollout", "status", "deployment", "kubia", "--timeout=5m"); r.Err != nil {
				b.Fatalf("first rollout: %v %s", r.Err, r.Stderr)
			}
		}
		b.StartTimer()
		took, samples, err := framework.TimeRollout(ctx, c.Client(), "default", "kubia", to, 250*time.Millisecond)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(took.Seconds(), "rollout-s")
		if os.Getenv("SKIFF_ROLLOUT_CHART") != "" {
			fmt.Println(framework.RolloutChart(samples, 20))
		}
	}
}

// BenchmarkServiceProxyOverhead compares HTTP requests from the node to a
// test-server pod through its Service's cluster IP (nftables DNAT and
// masquerade) with requests straight to the pod IP: latency of requests
// on new connections (where NAT costs: each is a new conntrack entry),
// alternated between the two targets, and throughput of 16 keep-alive
// clients, alternating 1-second runs (6 each).
//
//	SKIFF_BIN=$PWD/bin/skiff go test ./test/e2e -run '^$' -bench ServiceProxyOverhead -benchtime 1x
func BenchmarkServiceProxyOverhead(b *testing.B) {
	c := nodeCluster(b)
	importTestServer(b, c)
	k := framework.Kubectls(b)[len(framework.Kubectls(b))-1]
	k.Must(b, c, "run", "web", "--image="+testServer, "--image-pull-policy=Never", "--labels=app=web", "--port=8080")
	k.Must(b, c, "create", "service", "clusterip", "web", "--tcp=80:8080")
	ctx := context.Background()
	var podURL, svcURL string
	framework.Eventually(b, 60*time.Second, "web answering through its service", func() bool {
		p, err := c.Client().CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		s, err2 := c.Client().CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || err2 != nil || p.Status.PodIP == "" {
			return false
		}
		podURL, svcURL = "http://"+p.Status.PodIP+":8080/hostname", "http://"+s.Spec.ClusterIP+"/hostname"
		_, err = get(svcURL)
		return err == nil
	})
	newConn := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	fetch := func(cl *http.Client, url string) error {
		resp, err := cl.Get(url)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	b.ResetTimer()
	for range b.N {
		var direct, viaSvc []time.Duration
		for i := range 4000 {
			url := podURL
			if i%2 == 1 {
				url = svcURL
			}
			t0 := time.Now()
			if err := fetch(newConn, url); err != nil {
				b.Fatal(err)
			}
			if i%2 == 1 {
				viaSvc = append(viaSvc, time.Since(t0))
			} else {
				direct = append(direct, time.Since(t0))
			}
		}
		throughput := func(url string) float64 {
			cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 5 * time.Second}
			var n atomic.Int64
			stop := time.Now().Add(time.Second)
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) {
						if err := fetch(cl, url); err != nil {
							b.Error(err)
							return
						}
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			return float64(n.Load())
		}
		// Alternate the targets so that load from elsewhere on the machine
		// falls on both alike.
		var directRPS, svcRPS float64
		for range 6 {
			directRPS += throughput(podURL) / 6
			svcRPS += throughput(svcURL) / 6
		}
		b.ReportMetric(ms(pct(direct, 0.5))*1000, "pod-ip-p50-us")
		b.ReportMetric(ms(pct(direct, 0.99))*1000, "pod-ip-p99-us")
		b.ReportMetric(ms(pct(viaSvc, 0.5))*1000, "cluster-ip-p50-us")
		b.ReportMetric(ms(pct(viaSvc, 0.99))*1000, "cluster-ip-p99-us")
		b.ReportMetric(directRPS, "pod-ip-req/s")
		b.ReportMetric(svcRPS, "cluster-ip-req/s")
		b.ReportMetric(100*(float64(pct(viaSvc, 0.5))/float64(pct(direct, 0.5))-1), "p50-overhead-%")
		b.ReportMetric(100*(1-svcRPS/directRPS), "throughput-overhead-%")
	}
}
