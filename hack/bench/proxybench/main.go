// Command proxybench measures the service proxy (pkg/proxy): it starts a
// `skiff server` (control plane only), fills it with Services and
// EndpointSlices (1,000 Services of 10 endpoints each by default), runs
// the proxier in this process against the kernel's nftables (a table of
// its own, removed at the end), and then changes one endpoint at a time:
// the latency is from the EndpointSlice update being sent to the API
// server until the rules sending traffic to the new endpoint are
// installed. It reports the first (full) sync and p50/p90/p99/max of the
// change latency and of the proxy's own sync time.
//
//	go run ./hack/bench/proxybench -bin bin/skiff
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/hack/bench/internal/benchserver"
	"github.com/skiff/skiff/pkg/proxy"
)

var (
	bin       = flag.String("bin", "bin/skiff", "skiff binary")
	services  = flag.Int("services", 1000, "Services")
	endpoints = flag.Int("endpoints", 10, "endpoints per Service")
	changes   = flag.Int("changes", 300, "endpoint changes to time")
	gap       = flag.Duration("gap", 20*time.Millisecond, "pause between changes")
)

func main() {
	flag.Parse()
	dir, done := benchserver.TempDir("proxybench-")
	defer done()
	srv := benchserver.Start(*bin, dir, "--disable-agent", "--disable-controller-manager")
	defer srv.Stop()
	cs := kubernetes.NewForConfigOrDie(srv.Config(true))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t0 := time.Now()
	fill(ctx, cs)
	log.Printf("created %d services with %d endpoints in %v", *services, *services**endpoints, time.Since(t0).Round(time.Millisecond))

	table := fmt.Sprintf("skiff-proxybench-%d", os.Getpid())
	defer func() {
		if err := proxy.Cleanup(context.Background(), table); err != nil {
			log.Print(err)
		}
	}()
	syncs := make(chan proxy.SyncResult, 1000)
	factory := informers.NewSharedInformerFactory(cs, 0)
	p, err := proxy.New(proxy.Config{NodeName: "n1", ClusterCIDR: "10.42.0.0/16", Table: table, FullSyncPeriod: time.Hour,
		OnSync: func(r proxy.SyncResult) { syncs <- r }, Log: slog.New(slog.DiscardHandler)}, factory)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	factory.Start(ctx.Done())
	go func() { _ = p.Run(ctx) }()
	first := <-syncs
	if first.Err != nil {
		log.Fatal(first.Err)
	}
	fmt.Printf("first sync: %d endpoints, %d nftables operations, %v (informers + rules %v)\n",
		first.Endpoints, first.Operations, first.End.Sub(first.Start).Round(time.Millisecond), first.End.Sub(start).Round(time.Millisecond))

	var latencies, syncTimes []time.Duration
	var ops []int
	for i := range *changes {
		svc := rand.IntN(*services)
		ip := fmt.Sprintf("10.99.%d.%d", i/250, i%250+1)
		sl := endpointSlice(svc)
		sl.Endpoints[rand.IntN(*endpoints)].Addresses = []string{ip}
		drain(syncs)
		sent := time.Now()
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
			log.Fatal(err)
		}
		want := ip + ":8080"
		for !p.Programmed(want) {
			select {
			case r := <-syncs:
				if r.Err != nil {
					log.Fatal(r.Err)
				}
				syncTimes = append(syncTimes, r.End.Sub(r.Start))
				ops = append(ops, r.Operations)
			case <-time.After(10 * time.Second):
				log.Fatalf("change %d not programmed after 10s", i)
			}
		}
		latencies = append(latencies, time.Since(sent))
		time.Sleep(*gap)
	}
	fmt.Printf("endpoint change -> rules installed (%d changes, %d services, %d endpoints): %s\n", len(latencies), *services, *services**endpoints, percentiles(latencies))
	fmt.Printf("proxy sync (compute + diff + nft transaction): %s; operations per change median %d\n", percentiles(syncTimes), median(ops))
}

// fill creates the Services and their EndpointSlices, 32 at a time.
func fill(ctx context.Context, cs kubernetes.Interface) {
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i)},
					Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
						SessionAffinity: corev1.ServiceAffinityNone},
				}
				if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					log.Fatal(err)
				}
				sl := endpointSlice(i)
				sl.ResourceVersion = ""
				if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, sl, metav1.CreateOptions{}); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	for i := range *services {
		work <- i
	}
	close(work)
	wg.Wait()
}

// endpointSlice is Service i's slice with its initial endpoints.
func endpointSlice(i int) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc-%d", i)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for j := range *endpoints {
		n := i**endpoints + j
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.42.%d.%d", n/250, n%250+2)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			NodeName:   ptr.To(fmt.Sprintf("n%d", j%3)),
		})
	}
	return sl
}

func drain(c chan proxy.SyncResult) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		return s[min(len(s)-1, int(q*float64(len(s))))].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v, p90 %v, p99 %v, max %v", at(0.5), at(0.9), at(0.99), s[len(s)-1].Round(10*time.Microsecond))
}

func median(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
