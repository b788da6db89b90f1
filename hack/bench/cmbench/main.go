// Command cmbench measures the controller manager: it starts `skiff
// server` without agent or controller manager (its scheduler binds pods to
// simulated nodes, API objects only), runs the controller manager in this
// process, and stands in for the kubelets by marking every bound pod
// Running and Ready. It times a ReplicaSet scaled from 0 to -replicas until
// it reports them all ready, then scales it to -idle-pods, stops the
// stand-in kubelets and measures the controller manager's CPU and memory
// while nothing changes. It prints markdown rows for docs/benchmarks.md.
//
//	go run ./hack/bench/cmbench -bin bin/skiff -replicas 1000 -idle-pods 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"runtime"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/hack/bench/internal/benchserver"
	"github.com/skiff/skiff/pkg/controllermanager"
	"github.com/skiff/skiff/test/e2e/framework"
)

var (
	bin      = flag.String("bin", "bin/skiff", "skiff binary")
	nodes    = flag.Int("nodes", 100, "simulated nodes (110 pods each)")
	replicas = flag.Int("replicas", 1000, "replicas of the timed scale-up")
	idlePods = flag.Int("idle-pods", 10000, "pods held while the idle cost is measured (0 skips it)")
	rollout  = flag.Int("rollout", 100, "replicas of the timed Deployment rollout v1 -> v2 (0 skips it)")
	chart    = flag.Bool("chart", false, "print the rollout's ready pods over time")
	idleFor  = flag.Duration("idle-for", 60*time.Second, "how long the idle cost is measured")
	profile  = flag.String("cpuprofile", "", "write this process's CPU profile (controller manager and stand-in kubelets) here")
)

func main() {
	flag.Parse()
	defer benchserver.ProfileCPU(*profile)()
	dir, cleanup := benchserver.TempDir("cmbench")
	defer cleanup()
	server := benchserver.Start(*bin, dir, "--disable-agent", "--disable-controller-manager")
	defer server.Stop()
	cfg := server.Config(true)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	for i := range *nodes {
		if err := framework.CreateNode(ctx, cs, framework.SimulatedNode(fmt.Sprintf("node-%04d", i), nil, "32", "128Gi", 110)); err != nil {
			log.Fatal(err)
		}
	}
	kctx, stopKubelets := context.WithCancel(ctx)
	kubelets = framework.RunStandInKubelets(kctx, cs)
	cmCtx, stopCM := context.WithCancel(ctx)
	defer stopCM()
	go func() {
		// The simulated nodes post no heartbeats: the node lifecycle
		// controller must not find them dead during the run.
		opts := controllermanager.DefaultOptions()
		opts.NodeLifecycle.GracePeriod = 24 * time.Hour
		if err := controllermanager.Run(cmCtx, controllermanager.Config{REST: cfg, RootCA: cfg.CAData, ClusterCIDR: "10.42.0.0/16", Options: &opts}, logger()); err != nil {
			log.Fatal(err)
		}
	}()

	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bench"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "bench"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.local/bench:v1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	time.Sleep(time.Second) // the controller manager syncs its caches
	d, marks := scaleAndWait(ctx, cs, *replicas)
	fmt.Printf("| ReplicaSet scaled 0 → %d on %d simulated nodes, until status.readyReplicas = %d | %.2f s (all created %.2f s, all running %.2f s) |\n",
		*replicas, *nodes, *replicas, d.Seconds(), marks.created.Seconds(), marks.running.Seconds())
	if *rollout > 0 {
		d, samples := timeRollout(ctx, cs, *rollout)
		fmt.Printf("| Deployment of %d replicas rolled v1 → v2 (maxSurge 25%%, maxUnavailable 25%%) on simulated nodes | %.2f s |\n", *rollout, d.Seconds())
		if *chart {
			fmt.Print(framework.RolloutChart(samples, 20))
		}
	}
	if *idlePods == 0 {
		return
	}
	d, _ = scaleAndWait(ctx, cs, *idlePods)
	fmt.Fprintf(os.Stderr, "scaled to %d ready in %.1f s\n", *idlePods, d.Seconds())
	stopKubelets()
	time.Sleep(10 * time.Second) // events and status writes settle
	runtime.GC()
	cpu0, srv0 := selfCPU(), framework.CPUSeconds(server.Pid())
	t0 := time.Now()
	time.Sleep(*idleFor)
	el := time.Since(t0).Seconds()
	cpu, srv := (selfCPU()-cpu0)/el*100, (framework.CPUSeconds(server.Pid())-srv0)/el*100
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("| controller manager idle with %d pods (%v) | CPU %.2f%% of a core, RSS %.0f MB, Go heap in use %.0f MB (server beside it: CPU %.2f%%) |\n",
		*idlePods, *idleFor, cpu, benchserver.MemoryMB(0, "VmRSS"), float64(ms.HeapInuse)/1e6, srv)
}

var verbose = flag.Bool("v", false, "log the controller manager's messages")

func logger() *slog.Logger {
	if !*verbose {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// timeRollout creates a Deployment of n replicas, waits until they are
// available, and times its rollout to a new image.
func timeRollout(ctx context.Context, cs kubernetes.Interface, n int) (time.Duration, []framework.RolloutSample) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(n)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.local/web:v1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		got, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			log.Fatal(err)
		}
		if got.Status.AvailableReplicas == int32(n) && got.Status.UpdatedReplicas == int32(n) {
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("deployment v1 not available within 5 minutes")
		}
	}
	took, samples, err := framework.TimeRollout(ctx, cs, "default", "web", "registry.local/web:v2", 100*time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	return took, samples
}

type milestones struct{ created, running time.Duration }

// kubelets stand in for the simulated nodes' kubelets.
var kubelets *framework.StandInKubelets

// scaleAndWait scales the ReplicaSet to n and waits until it reports n
// ready replicas.
func scaleAndWait(ctx context.Context, cs kubernetes.Interface, n int) (time.Duration, milestones) {
	t0 := time.Now()
	if _, err := cs.AppsV1().ReplicaSets("default").Patch(ctx, "bench", types.MergePatchType,
		[]byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)), metav1.PatchOptions{}); err != nil {
		log.Fatal(err)
	}
	var m milestones
	for deadline := t0.Add(10 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("ReplicaSet not ready within 10 minutes")
		}
		rs, err := cs.AppsV1().ReplicaSets("default").Get(ctx, "bench", metav1.GetOptions{})
		if err != nil {
			log.Fatal(err)
		}
		if m.created == 0 && int(rs.Status.Replicas) >= n {
			m.created = time.Since(t0)
		}
		if m.running == 0 && kubelets.Started.Load() >= int64(n) {
			m.running = time.Since(t0)
		}
		if *verbose && time.Since(t0)%time.Second < 10*time.Millisecond {
			fmt.Fprintf(os.Stderr, "%.1fs: replicas %d ready %d running %d\n", time.Since(t0).Seconds(), rs.Status.Replicas, rs.Status.ReadyReplicas, kubelets.Started.Load())
		}
		if int(rs.Status.ReadyReplicas) == n {
			return time.Since(t0), m
		}
	}
}

// selfCPU is this process's user+system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
