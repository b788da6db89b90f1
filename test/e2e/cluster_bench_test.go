package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// BenchmarkClusterCreate times `skiff cluster create` to every node Ready
// (create waits for it) for 1, 3 and 10 nodes, and reports the memory
// (PSS) of the cluster's processes per node.
func BenchmarkClusterCreate(b *testing.B) {
	for _, nodes := range []int{1, 3, 10} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var total time.Duration
			var pss float64
			for range b.N {
				start := time.Now()
				l := framework.CreateLocalCluster(b, "", "", "--agents", strconv.Itoa(nodes-1))
				total += time.Since(start)
				time.Sleep(5 * time.Second) // settled: images imported, first syncs done
				pss += clusterPSS(l) / float64(nodes)
				b.StopTimer()
				// The next run starts with this one deleted.
				l.Delete(b)
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-ready")
			b.ReportMetric(pss/float64(b.N), "MiB-PSS-per-node")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkNodeFailover kills an agent of a 3-node cluster (grace period
// 10 s, pods tolerate unreachable for 5 s, as the target names)
// and times until all 6 pods of a Deployment are Ready elsewhere.
func BenchmarkNodeFailover(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		l := framework.CreateLocalCluster(b, busybox, "", "--agents", "2",
			"--kube-controller-manager-arg", "node-monitor-grace-period=10s",
			"--kube-apiserver-arg", "default-unreachable-toleration-seconds=5")
		k := framework.Kubectls(b)[len(framework.Kubectls(b))-1]
		k.MustIn(b, l.Cluster, spreadDeployment(6, "- {name: main, image: "+busybox+", command: [sleep, \"3600\"]}"), "apply", "-f", "-")
		victim := l.NodeName("agent-0")
		readyOff := func(node string) (ready, on int) {
			pods, err := l.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return 0, 0
			}
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && podReady(&p) && p.Status.Phase == corev1.PodRunning {
					ready++
					if p.Spec.NodeName == node {
						on++
					}
				}
			}
			return ready, on
		}
		framework.Eventually(b, 60*time.Second, "6 pods Ready, some on "+victim, func() bool {
			r, on := readyOff(victim)
			return r == 6 && on > 0
		})
		b.StartTimer()
		start := time.Now()
		l.Node(b, "kill", "agent-0")
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if r, on := readyOff(victim); r == 6 && on == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("pods not replaced within 2 minutes")
			}
			time.Sleep(50 * time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		l.Delete(b)
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-replaced")
	b.ReportMetric(0, "ns/op")
}

// clusterPSS sums the proportional set size (MiB: resident memory, pages
// shared between processes split among them) of every process the
// cluster runs outside containers (servers, agents, runtimes, the API
// forwarder), found by the cluster's dir on their command lines.
func clusterPSS(l *framework.LocalCluster) float64 {
	var kib float64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), l.Dir) {
			continue
		}
		status, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "smaps_rollup"))
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				v, _ := strconv.ParseFloat(f[1], 64)
				kib += v
			}
		}
	}
	return kib / 1024
}
