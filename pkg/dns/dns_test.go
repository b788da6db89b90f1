package dns

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

func service(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: clusterIP, Ports: ports}}
	if clusterIP != "" {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

func slice(ns, svc string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps, Ports: ports,
	}
}

func ep(ip string, ready bool, hostname string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
	if hostname != "" {
		e.Hostname = ptr.To(hostname)
	}
	return e
}

func newTestServer(t testing.TB, upstreams ...string) (*Server, *clocktesting.FakeClock) {
	t.Helper()
	svcs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	slices := cache.NewIndexer(cache.MetaNamespaceKeyFunc, SliceIndexers)
	web := corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}
	for _, s := range []*corev1.Service{
		service("default", "kubia", "10.43.0.20", web, corev1.ServicePort{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443}),
		service("default", "kubia-headless", "None", web),
		service("other", "db", "10.43.0.30", corev1.ServicePort{Name: "pg", Protocol: corev1.ProtocolTCP, Port: 5432}),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "alias"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "kubia.default.svc.cluster.local"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "loop"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "loop.default.svc.cluster.local"}},
	} {
		if err := svcs.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	ports := []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}}
	if err := slices.Add(slice("default", "kubia-headless", ports, ep("10.42.0.5", true, "a-0"), ep("10.42.0.6", true, ""), ep("10.42.0.7", false, ""))); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return New(Config{Domain: "cluster.local", Upstreams: upstreams, Services: corelisters.NewServiceLister(svcs), Slices: slices, Clock: clk}), clk
}

func ask(s *Server, name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return s.Answer(m, false)
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.CNAME:
			out = append(out, "CNAME "+v.Target)
		case *dns.SRV:
			out = append(out, fmt.Sprintf("SRV %d %s", v.Port, v.Target))
		case *dns.PTR:
			out = append(out, "PTR "+v.Ptr)
		}
	}
	sort.Strings(out)
	return out
}

func TestClusterRecords(t *testing.T) {
	s, _ := newTestServer(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
		rcode int
	}{
		{"kubia.default.svc.cluster.local", dns.TypeA, "10.43.0.20", dns.RcodeSuccess},
		{"KUBIA.default.svc.cluster.local", dns.TypeA, "10.43.0.20", dns.RcodeSuccess},
		{"kubia.default.svc.cluster.local", dns.TypeAAAA, "", dns.RcodeSuccess},
		{"kubia-headless.default.svc.cluster.local", dns.TypeA, "10.42.0.5 10.42.0.6", dns.RcodeSuccess},
		{"a-0.kubia-headless.default.svc.cluster.local", dns.TypeA, "10.42.0.5", dns.RcodeSuccess},
		{"10-42-0-6.kubia-headless.default.svc.cluster.local", dns.TypeA, "10.42.0.6", dns.RcodeSuccess},
		{"db.other.svc.cluster.local", dns.TypeA, "10.43.0.30", dns.RcodeSuccess},
		{"ext.default.svc.cluster.local", dns.TypeA, "CNAME example.com.", dns.RcodeSuccess},
		{"alias.default.svc.cluster.local", dns.TypeA, "10.43.0.20 CNAME kubia.default.svc.cluster.local.", dns.RcodeSuccess},
		{"alias.default.svc.cluster.local", dns.TypeCNAME, "CNAME kubia.default.svc.cluster.local.", dns.RcodeSuccess},
		{"loop.default.svc.cluster.local", dns.TypeA, "CNAME loop.default.svc.cluster.local.", dns.RcodeSuccess},
		{"_http._tcp.kubia.default.svc.cluster.local", dns.TypeSRV, "SRV 80 kubia.default.svc.cluster.local.", dns.RcodeSuccess},
		{"_https._tcp.kubia.default.svc.cluster.local", dns.TypeSRV, "SRV 443 kubia.default.svc.cluster.local.", dns.RcodeSuccess},
		{"_http._tcp.kubia-headless.default.svc.cluster.local", dns.TypeSRV,
			"SRV 8080 10-42-0-6.kubia-headless.default.svc.cluster.local. SRV 8080 a-0.kubia-headless.default.svc.cluster.local.", dns.RcodeSuccess},
		{"_nope._tcp.kubia.default.svc.cluster.local", dns.TypeSRV, "", dns.RcodeNameError},
		{"10-42-0-9.default.pod.cluster.local", dns.TypeA, "10.42.0.9", dns.RcodeSuccess},
		{"20.0.43.10.in-addr.arpa", dns.TypePTR, "PTR kubia.default.svc.cluster.local.", dns.RcodeSuccess},
		{"5.0.42.10.in-addr.arpa", dns.TypePTR, "PTR a-0.kubia-headless.default.svc.cluster.local.", dns.RcodeSuccess},
		{"missing.default.svc.cluster.local", dns.TypeA, "", dns.RcodeNameError},
		{"kubia.nons.svc.cluster.local", dns.TypeA, "", dns.RcodeNameError},
		{"10-42-0-7.kubia-headless.default.svc.cluster.local", dns.TypeA, "", dns.RcodeNameError},
	} {
		m := ask(s, tc.name, tc.qtype)
		if m.Rcode != tc.rcode || strings.Join(answers(m), " ") != tc.want {
			t.Errorf("%s %s: rcode %d answers %v, want %d %q", tc.name, dns.TypeToString[tc.qtype], m.Rcode, answers(m), tc.rcode, tc.want)
		}
		if m.Rcode == dns.RcodeNameError && (len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("%s: NXDOMAIN without the SOA for negative caching: %v", tc.name, m.Ns)
		}
		if !m.Authoritative && tc.rcode == dns.RcodeSuccess {
			t.Errorf("%s: not authoritative", tc.name)
		}
	}
	// SRV answers carry the targets' addresses.
	m := ask(s, "_http._tcp.kubia-headless.default.svc.cluster.local", dns.TypeSRV)
	if len(m.Extra) != 2 {
		t.Errorf("SRV additional records %v", m.Extra)
	}
}

// upstream is a resolver on loopback that counts the queries it answers.
func upstream(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		n.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "example.com." {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.ParseIP("192.0.2.1")}}
		} else {
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "com.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 900}, Ns: "a.", Mbox: "b.", Minttl: 60}}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String(), &n
}

func TestForwardingAndCaching(t *testing.T) {
	up, hits := upstream(t)
	s, clk := newTestServer(t, up)
	m := ask(s, "example.com", dns.TypeA)
	if strings.Join(answers(m), " ") != "192.0.2.1" {
		t.Fatalf("forwarded answer %v", m)
	}
	ask(s, "example.com", dns.TypeA)
	if hits.Load() != 1 {
		t.Fatalf("upstream asked %d times, want 1 (cached)", hits.Load())
	}
	clk.Step(10 * time.Second)
	if m := ask(s, "example.com", dns.TypeA); m.Answer[0].Header().Ttl != 20 {
		t.Errorf("cached answer TTL %d, want 20", m.Answer[0].Header().Ttl)
	}
	clk.Step(21 * time.Second)
	ask(s, "example.com", dns.TypeA)
	if hits.Load() != 2 {
		t.Fatalf("expired answer served from the cache")
	}
	// Negative answers are cached for the SOA minimum.
	for range 3 {
		if m := ask(s, "nope.example.org", dns.TypeA); m.Rcode != dns.RcodeNameError {
			t.Fatalf("rcode %d", m.Rcode)
		}
	}
	if hits.Load() != 3 {
		t.Fatalf("negative answer not cached: %d upstream queries", hits.Load())
	}
	// An ExternalName's target is resolved upstream and added.
	if got := strings.Join(answers(ask(s, "ext.default.svc.cluster.local", dns.TypeA)), " "); got != "192.0.2.1 CNAME example.com." {
		t.Errorf("ExternalName answer %q", got)
	}
	// Cluster names never leave.
	ask(s, "missing.default.svc.cluster.local", dns.TypeA)
	if hits.Load() != 3 {
		t.Fatal("a cluster name was forwarded")
	}
}

func TestServeOverUDPAndTCP(t *testing.T) {
	s, _ := newTestServer(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, addr) }()
	defer func() {
		cancel()
		<-done
	}()
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: time.Second}
		m := new(dns.Msg)
		m.SetQuestion("kubia.default.svc.cluster.local.", dns.TypeA)
		var resp *dns.Msg
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if resp, _, err = c.Exchange(m, addr); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || strings.Join(answers(resp), " ") != "10.43.0.20" {
			t.Fatalf("%s: %v %v", network, resp, err)
		}
	}
}

// BenchmarkAnswer measures answering service A queries (no network).
func BenchmarkAnswer(b *testing.B) {
	s, _ := newTestServer(b)
	m := new(dns.Msg)
	m.SetQuestion("kubia.default.svc.cluster.local.", dns.TypeA)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Answer(m, true)
		}
	})
}
