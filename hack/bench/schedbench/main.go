// Command schedbench measures scheduling throughput: it starts `skiff
// server` without agent or scheduler, creates simulated nodes (API objects
// only) and pending pods, then runs the scheduler in this process and
// times until every pod is bound. It prints markdown rows for
// docs/benchmarks.md.
//
//	go run ./hack/bench/schedbench -bin bin/skiff -nodes 1000 -pods 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff/skiff/hack/bench/internal/benchserver"
	"github.com/skiff/skiff/pkg/scheduler"
	"github.com/skiff/skiff/test/e2e/framework"
)

var (
	bin      = flag.String("bin", "bin/skiff", "skiff binary")
	nodes    = flag.Int("nodes", 1000, "simulated nodes")
	pods     = flag.Int("pods", 10000, "pods to schedule")
	groups   = flag.Int("groups", 100, "pod groups for the anti-affinity run (pods of a group repel each other per node)")
	variants = flag.String("run", "plain,antiaffinity", "runs: plain, antiaffinity")
	profile  = flag.String("cpuprofile", "", "write the scheduler process's CPU profile here")
)

func main() {
	flag.Parse()
	defer benchserver.ProfileCPU(*profile)()
	root, cleanup := benchserver.TempDir("schedbench")
	defer cleanup()
	for _, v := range []string{"plain", "antiaffinity"} {
		if !contains(*variants, v) {
			continue
		}
		rate, d := run(filepath.Join(root, v), v == "antiaffinity")
		fmt.Printf("| %s: %d pods onto %d nodes | %.0f pods/s (%.2f s) |\n", v, *pods, *nodes, rate, d.Seconds())
	}
}

func contains(list, v string) bool {
	for _, s := range splitComma(list) {
		if s == v {
			return true
		}
	}
	return false
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func run(dir string, antiAffinity bool) (float64, time.Duration) {
	srv := benchserver.Start(*bin, dir, "--disable-agent", "--disable-scheduler")
	defer srv.Stop()
	cfg := srv.Config(true)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNodes(ctx, cs)
	createPods(ctx, cs, antiAffinity)

	// Start the scheduler and time until it has bound every pod (the
	// API server accepted each binding).
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := scheduler.New(scheduler.Config{Client: cs, Log: logger()})
	cpu0 := framework.CPUSeconds(srv.Pid())
	t0 := time.Now()
	go func() { _ = s.Run(sctx) }()
	for deadline := t0.Add(10 * time.Minute); s.Scheduled() < int64(*pods); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("only %d of %d pods bound", s.Scheduled(), *pods)
		}
	}
	d := time.Since(t0)
	fmt.Fprintf(os.Stderr, "server CPU during the run: %.2f s\n", framework.CPUSeconds(srv.Pid())-cpu0)
	return float64(*pods) / d.Seconds(), d
}

func createNodes(ctx context.Context, cs kubernetes.Interface) {
	parallel(*nodes, func(i int) error {
		return framework.CreateNode(ctx, cs, framework.SimulatedNode(fmt.Sprintf("node-%04d", i),
			map[string]string{corev1.LabelTopologyZone: fmt.Sprintf("zone-%d", i%3)}, "32", "128Gi", 110))
	})
}

func createPods(ctx context.Context, cs kubernetes.Interface, antiAffinity bool) {
	parallel(*pods, func(i int) error {
		group := strconv.Itoa(i % *groups)
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Labels: map[string]string{"group": group}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "registry.local/bench:v1",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("100Mi"),
				}},
			}}},
		}
		if antiAffinity {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}},
					TopologyKey:   corev1.LabelHostname,
				}},
			}}
		}
		_, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		return err
	})
}

func parallel(n int, f func(i int) error) {
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
}

var verbose = flag.Bool("v", false, "log the scheduler's warnings and debug messages")

func logger() *slog.Logger {
	if !*verbose {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
