// Command dnsbench measures the cluster DNS (pkg/dns): it runs the server
// in a child process limited to one core (GOMAXPROCS=1) with 1,000
// Services and a headless one of 100 endpoints in its caches, sends it A
// queries over UDP from many concurrent clients for a while, and reports
// queries answered per second and per CPU-second of the server.
//
//	go run ./hack/bench/dnsbench -for 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/hack/bench/internal/benchserver"
	skiffdns "github.com/skiff/skiff/pkg/dns"
	"github.com/skiff/skiff/test/e2e/framework"
)

var (
	serve   = flag.String("serve", "", "internal: serve on this address (the child)")
	runFor  = flag.Duration("for", 10*time.Second, "how long to send queries")
	clients = flag.Int("clients", 64, "concurrent clients")
	mix     = flag.Bool("headless", false, "also ask for the headless Service (100 addresses, truncated to 512 bytes over UDP)")
)

func main() {
	flag.Parse()
	if *serve != "" {
		runServer(*serve)
		return
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	child := exec.Command(self, "-serve", addr)
	child.Env = append(os.Environ(), "GOMAXPROCS=1")
	child.Stderr = os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGTERM); _ = child.Wait() }()
	waitReady(addr)

	names := []string{"svc-0001.default.svc.cluster.local.", "svc-0500.default.svc.cluster.local.", "svc-0999.default.svc.cluster.local."}
	what := "ClusterIP Services"
	if *mix {
		names[2], what = "headless.default.svc.cluster.local.", "ClusterIP and headless Services"
	}
	var answered, failed atomic.Int64
	cpu0 := framework.CPUSeconds(child.Process.Pid)
	deadline := time.Now().Add(*runFor)
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", addr)
			if err != nil {
				log.Fatal(err)
			}
			defer conn.Close()
			co := &dns.Conn{Conn: conn}
			m := new(dns.Msg)
			for j := 0; time.Now().Before(deadline); j++ {
				m.SetQuestion(names[(i+j)%len(names)], dns.TypeA)
				_ = conn.SetDeadline(time.Now().Add(time.Second))
				if err := co.WriteMsg(m); err != nil {
					failed.Add(1)
					continue
				}
				if r, err := co.ReadMsg(); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					failed.Add(1)
					continue
				}
				answered.Add(1)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0).Seconds()
	cpu := framework.CPUSeconds(child.Process.Pid) - cpu0
	fmt.Printf("| cluster DNS, A queries for %s over UDP (%d clients, server GOMAXPROCS=1, %d cores) | %.0f answered/s; %.0f per server CPU-second (server used %.2f cores); %d failed |\n",
		what, *clients, runtime.NumCPU(), float64(answered.Load())/wall, float64(answered.Load())/cpu, cpu/wall, failed.Load())
}

func waitReady(addr string) {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("svc-0001.default.svc.cluster.local.", dns.TypeA)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, _, err := c.Exchange(m, addr); err == nil {
			return
		}
	}
	log.Fatal("DNS server did not start")
}

func runServer(addr string) {
	svcs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	slices := cache.NewIndexer(cache.MetaNamespaceKeyFunc, skiffdns.SliceIndexers)
	for i := range 1000 {
		ip := fmt.Sprintf("10.43.%d.%d", i/250, i%250+1)
		_ = svcs.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("svc-%04d", i)},
			Spec: corev1.ServiceSpec{ClusterIP: ip, ClusterIPs: []string{ip}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
	}
	_ = svcs.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "headless"}, Spec: corev1.ServiceSpec{ClusterIP: "None"}})
	var eps []discoveryv1.Endpoint
	for i := range 100 {
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.42.0.%d", i+2)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	_ = slices.Add(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "headless-x", Labels: map[string]string{discoveryv1.LabelServiceName: "headless"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps})
	s := skiffdns.New(skiffdns.Config{Domain: "cluster.local", Services: corelisters.NewServiceLister(svcs), Slices: slices})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if p := os.Getenv("SKIFF_CPUPROFILE"); p != "" {
		defer benchserver.ProfileCPU(p)()
	}
	if err := s.Serve(ctx, addr); err != nil {
		log.Fatal(err)
	}
}
