// Command apibench measures the API server: cold start to /readyz, idle
// RSS, create throughput, and get, list and watch latency with many
// objects. It starts `skiff server` itself in a temp dir and prints a
// markdown table for docs/benchmarks.md.
//
//	go run ./hack/bench/apibench -bin bin/skiff -objects 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff/skiff/hack/bench/internal/benchserver"
)

var (
	bin         = flag.String("bin", "bin/skiff", "skiff binary")
	objects     = flag.Int("objects", 10000, "pods to create")
	concurrency = flag.Int("concurrency", 32, "concurrent creators")
	starts      = flag.Int("starts", 5, "cold starts to time")
	protobuf    = flag.Bool("protobuf", false, "use protobuf instead of JSON")
)

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func pod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%05d", i), Labels: map[string]string{"app": "bench", "shard": strconv.Itoa(i % 10)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.local/bench:v1",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
			Env:   []corev1.EnvVar{{Name: "MODE", Value: "bench"}},
		}}},
	}
}

func main() {
	flag.Parse()
	root, err := os.MkdirTemp("", "apibench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	rows := [][2]string{}
	add := func(k, v string) { rows = append(rows, [2]string{k, v}); fmt.Fprintf(os.Stderr, "%s: %s\n", k, v) }

	// Cold starts: fresh data dir each time.
	var cold []time.Duration
	for i := 0; i < *starts; i++ {
		s := benchserver.Start(*bin, filepath.Join(root, fmt.Sprintf("cold%d", i)), "--disable-agent")
		d := s.Ready
		cold = append(cold, d)
		s.Stop()
	}
	add("cold start to /readyz (fresh data dir), median of "+strconv.Itoa(*starts), ms(pct(cold, 0.5)))

	s := benchserver.Start(*bin, filepath.Join(root, "main"), "--disable-agent")
	defer s.Stop()
	time.Sleep(5 * time.Second)
	add("idle RSS after start (of which anonymous)", fmt.Sprintf("%.1f MB (%.1f MB)", benchserver.MemoryMB(s.Pid(), "VmRSS"), benchserver.MemoryMB(s.Pid(), "RssAnon")))

	cs := kubernetes.NewForConfigOrDie(s.Config(*protobuf))
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")

	// Creates.
	var created atomic.Int64
	work := make(chan int, *objects)
	for i := 0; i < *objects; i++ {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if _, err := pods.Create(ctx, pod(i), metav1.CreateOptions{}); err != nil {
					log.Fatalf("create: %v", err)
				}
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	add(fmt.Sprintf("pod creates/s (%d pods, %d concurrent clients)", *objects, *concurrency), fmt.Sprintf("%.0f", float64(*objects)/el.Seconds()))

	// Gets.
	var gets []time.Duration
	for i := 0; i < 2000; i++ {
		name := fmt.Sprintf("bench-%05d", rand.IntN(*objects))
		t := time.Now()
		if _, err := pods.Get(ctx, name, metav1.GetOptions{}); err != nil {
			log.Fatal(err)
		}
		gets = append(gets, time.Since(t))
	}
	add("get pod latency p50 / p99 (2000 gets)", ms(pct(gets, 0.5))+" / "+ms(pct(gets, 0.99)))

	// Lists.
	for _, rv := range []string{"", "0"} {
		var lists []time.Duration
		for i := 0; i < 10; i++ {
			t := time.Now()
			l, err := pods.List(ctx, metav1.ListOptions{ResourceVersion: rv})
			if err != nil {
				log.Fatal(err)
			}
			if len(l.Items) != *objects {
				log.Fatalf("list returned %d", len(l.Items))
			}
			lists = append(lists, time.Since(t))
		}
		add(fmt.Sprintf("list %d pods latency p50 / p99 (resourceVersion=%q, 10 lists)", *objects, rv), ms(pct(lists, 0.5))+" / "+ms(pct(lists, 0.99)))
	}
	var sel []time.Duration
	for i := 0; i < 50; i++ {
		t := time.Now()
		if _, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "shard=3"}); err != nil {
			log.Fatal(err)
		}
		sel = append(sel, time.Since(t))
	}
	add(fmt.Sprintf("list by label (%d of %d pods) p50 / p99", *objects/10, *objects), ms(pct(sel, 0.5))+" / "+ms(pct(sel, 0.99)))

	// Watch latency: from the start of an update to its event arriving.
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: "0", LabelSelector: "shard=5"})
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *objects/10; i++ { // drain initial ADDED events
		<-w.ResultChan()
	}
	var watches []time.Duration
	for i := 0; i < 500; i++ {
		name := fmt.Sprintf("bench-%05d", (rand.IntN(*objects/10))*10+5)
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			log.Fatal(err)
		}
		p.Labels["touch"] = strconv.Itoa(i)
		t := time.Now()
		if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			log.Fatal(err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified && ev.Object.(*corev1.Pod).Labels["touch"] == strconv.Itoa(i) {
				break
			}
		}
		watches = append(watches, time.Since(t))
	}
	w.Stop()
	add("update-to-watch-event latency p50 / p99 (500 updates)", ms(pct(watches, 0.5))+" / "+ms(pct(watches, 0.99)))
	add(fmt.Sprintf("RSS with %d pods (of which anonymous)", *objects), fmt.Sprintf("%.1f MB (%.1f MB)", benchserver.MemoryMB(s.Pid(), "VmRSS"), benchserver.MemoryMB(s.Pid(), "RssAnon")))

	fmt.Println("| measure | result |")
	fmt.Println("|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s |\n", r[0], r[1])
	}
}
