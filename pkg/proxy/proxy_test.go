package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/pkg/network/netnstest"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

func service(name string, mutate func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: "10.43.0.20",
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

type ep struct {
	ip    string
	node  string
	ready bool
}

func slice(svc, name string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			NodeName:   ptr.To(e.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready), Serving: ptr.To(e.ready), Terminating: ptr.To(false)},
		})
	}
	return s
}

func input(svcs []*corev1.Service, slices ...*discoveryv1.EndpointSlice) rulesInput {
	in := rulesInput{node: "n1", clusterCIDR: "10.42.0.0/16", services: svcs, slices: map[string][]*discoveryv1.EndpointSlice{}}
	for _, s := range slices {
		k := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
		in.slices[k] = append(in.slices[k], s)
	}
	return in
}

// chainWith returns the rules of the one chain whose name starts with
// prefix.
func chainWith(t *testing.T, r *fragment, prefix string) []string {
	t.Helper()
	var found []string
	n := 0
	for name, rules := range r.chains {
		if strings.HasPrefix(name, prefix) {
			found = rules
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d chains named %s*, want 1 (chains: %v)", n, prefix, keys(r.chains))
	}
	return found
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestClusterIPBalancesOverReadyEndpoints(t *testing.T) {
	r := computeRules(input([]*corev1.Service{service("web", nil)},
		slice("web", "web-1", 8080, ep{"10.42.0.5", "n1", true}, ep{"10.42.1.6", "n2", true}, ep{"10.42.1.7", "n2", false})), nil).merged()
	if got := r.maps[serviceIPsMap]["10.43.0.20 . tcp . 80"]; !strings.HasPrefix(got, "goto service-") {
		t.Fatalf("service-ips element = %q", got)
	}
	rules := chainWith(t, r, "service-")
	if !strings.Contains(rules[0], "ip saddr != 10.42.0.0/16 jump mark-for-masquerade") {
		t.Errorf("no masquerade of traffic from outside the pod network: %q", rules[0])
	}
	if last := rules[len(rules)-1]; last != "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.42.0.5 . 8080 , 1 : 10.42.1.6 . 8080 }" {
		t.Errorf("balancing rule = %q, want the 2 ready endpoints", last)
	}
	if len(r.endpoints) != 2 || !r.endpoints["10.42.0.5:8080"] || r.endpoints["10.42.1.7:8080"] {
		t.Errorf("endpoints = %v", r.endpoints)
	}
	for name := range r.chains {
		if strings.HasPrefix(name, "endpoint-") {
			t.Errorf("chain %s: without session affinity endpoints need no chain", name)
		}
	}
	// Hairpin: each endpoint's own connections come back masqueraded.
	all := computeRules(input([]*corev1.Service{service("web", nil)},
		slice("web", "web-1", 8080, ep{"10.42.0.5", "n1", true}, ep{"10.42.1.6", "n2", true})), nil)
	if len(all.hairpin) != 2 || !all.hairpin["10.42.0.5"] || !all.hairpin["10.42.1.6"] {
		t.Errorf("hairpin set = %v", all.hairpin)
	}
}

func TestServiceWithoutEndpointsIsRejected(t *testing.T) {
	svc := service("web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
	})
	r := computeRules(input([]*corev1.Service{svc}, slice("web", "web-1", 8080, ep{"10.42.0.5", "n1", false})), nil).merged()
	if got := r.maps[noEndpointServicesMap]["10.43.0.20 . tcp . 80"]; got != "goto reject-chain" {
		t.Errorf("no-endpoint-services element = %q", got)
	}
	if got := r.maps[noEndpointNodePortsMap]["tcp . 30080"]; got != "goto reject-chain" {
		t.Errorf("no-endpoint-nodeports element = %q", got)
	}
	if len(r.maps[serviceIPsMap]) != 0 || len(r.chains) != 0 {
		t.Errorf("rules for a service without endpoints: %v %v", r.maps[serviceIPsMap], keys(r.chains))
	}
}

func TestTerminatingEndpointsServeWhenNoneIsReady(t *testing.T) {
	sl := slice("web", "web-1", 8080)
	sl.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}}}
	r := computeRules(input([]*corev1.Service{service("web", nil)}, sl), nil).merged()
	if !r.endpoints["10.42.0.9:8080"] {
		t.Fatalf("terminating serving endpoint not used: %v", r.endpoints)
	}
}

func TestSessionAffinityRemembersClients(t *testing.T) {
	svc := service("web", func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
	})
	r := computeRules(input([]*corev1.Service{svc}, slice("web", "web-1", 8080, ep{"10.42.0.5", "n1", true}, ep{"10.42.0.6", "n1", true})), nil).merged()
	if len(r.sets) != 2 {
		t.Fatalf("affinity sets = %v", r.sets)
	}
	for _, timeout := range r.sets {
		if timeout != time.Minute {
			t.Errorf("affinity timeout = %v", timeout)
		}
	}
	rules := chainWith(t, r, "service-")
	if !strings.HasPrefix(rules[1], "ip saddr @affinity-") || !strings.Contains(rules[1], " goto endpoint-") {
		t.Errorf("service chain does not consult affinity first: %q", rules)
	}
}

func TestLocalTrafficPolicies(t *testing.T) {
	svc := service("web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.7"}}
	})
	r := computeRules(input([]*corev1.Service{svc}, slice("web", "web-1", 8080, ep{"10.42.0.5", "n1", true}, ep{"10.42.1.6", "n2", true})), nil).merged()
	local := chainWith(t, r, "local-")
	if fmt.Sprint(local) != "[meta l4proto tcp dnat to 10.42.0.5:8080]" {
		t.Errorf("local chain = %q, want only this node's endpoint", local)
	}
	if got := r.maps[serviceIPsMap]["10.43.0.20 . tcp . 80"]; !strings.HasPrefix(got, "goto local-") {
		t.Errorf("internalTrafficPolicy Local: cluster IP goes to %q", got)
	}
	if got := r.maps[serviceIPsMap]["192.0.2.7 . tcp . 80"]; !strings.HasPrefix(got, "goto external-") {
		t.Errorf("load-balancer IP goes to %q", got)
	}
	if got := r.maps[serviceNodePortsMap]["tcp . 30080"]; !strings.HasPrefix(got, "goto external-") {
		t.Errorf("node port goes to %q", got)
	}
	ext := chainWith(t, r, "external-")
	if strings.Contains(ext[len(ext)-1], "service-") || !strings.HasPrefix(ext[len(ext)-1], "goto local-") {
		t.Errorf("external chain = %q, want client address kept and local endpoints", ext)
	}

	// No local endpoint: dropped, not sent elsewhere.
	r = computeRules(input([]*corev1.Service{svc}, slice("web", "web-1", 8080, ep{"10.42.1.6", "n2", true})), nil).merged()
	if got := chainWith(t, r, "local-"); fmt.Sprint(got) != "[drop]" {
		t.Errorf("local chain without local endpoints = %q", got)
	}
}

func TestClusterDNSGoesToTheNode(t *testing.T) {
	in := input([]*corev1.Service{service("kube-dns", func(s *corev1.Service) { s.Spec.ClusterIP = "10.43.0.10" })})
	in.dnsIP, in.dnsTarget = "10.43.0.10", "10.42.0.1:53"
	r := computeRules(in, nil).merged()
	if got := r.maps[serviceIPsMap]["10.43.0.10 . udp . 53"]; got != "goto cluster-dns" {
		t.Errorf("DNS element = %q", got)
	}
	if len(r.maps[noEndpointServicesMap]) != 0 {
		t.Errorf("the DNS service is rejected: %v", r.maps[noEndpointServicesMap])
	}
}

func TestDiffSendsOnlyWhatChanged(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "skiff-test")
	tab := &table{nft: fake}
	ctx := context.Background()
	var svcs []*corev1.Service
	var sls []*discoveryv1.EndpointSlice
	for i := range 100 {
		name := fmt.Sprintf("s%d", i)
		svcs = append(svcs, service(name, func(s *corev1.Service) { s.Spec.ClusterIP = fmt.Sprintf("10.43.1.%d", i) }))
		sls = append(sls, slice(name, name, 8080, ep{fmt.Sprintf("10.42.0.%d", i+2), "n1", true}, ep{fmt.Sprintf("10.42.1.%d", i+2), "n2", true}))
	}
	full, err := tab.apply(ctx, computeRules(input(svcs, sls...), nil))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tab.apply(ctx, computeRules(input(svcs, sls...), tab.installed)); err != nil || n != 0 {
		t.Fatalf("re-applying the same rules sent %d operations (%v)", n, err)
	}
	// Unchanged Services keep their fragment: nothing is recomputed.
	if again := computeRules(input(svcs, sls...), tab.installed); again.fragments["default/s1"] != tab.installed.fragments["default/s1"] {
		t.Error("an unchanged service's rules were recomputed")
	}
	sls[7] = slice("s7", "s7", 8080, ep{"10.42.0.9", "n1", true}, ep{"10.42.2.9", "n3", true})
	n, err := tab.apply(ctx, computeRules(input(svcs, sls...), tab.installed))
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || n > 10 {
		t.Fatalf("one endpoint change sent %d operations (full sync %d)", n, full)
	}
	dump := fake.Dump()
	if !strings.Contains(dump, "10.42.2.9 . 8080") || strings.Contains(dump, "10.42.1.9 . 8080") || !strings.Contains(dump, "10.42.2.9 . 10.42.2.9") {
		t.Errorf("table after the change:\n%s", dump)
	}
	// A service going away takes its chains and elements with it.
	n, err = tab.apply(ctx, computeRules(input(svcs[:99], sls[:99]...), tab.installed))
	if err != nil || n == 0 {
		t.Fatalf("removing a service: %d operations, %v", n, err)
	}
	if strings.Contains(fake.Dump(), "10.43.1.99") || strings.Contains(fake.Dump(), "default/s99/") {
		t.Errorf("removed service still in the table")
	}
}

// TestRealTableFollowsTheAPI runs the proxier against the kernel's
// nftables, fed by informers on a fake clientset.
func TestRealTableFollowsTheAPI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
	name := fmt.Sprintf("skiff-proxy-test-%d", os.Getpid())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		if err := Cleanup(context.Background(), name); err != nil {
			t.Error(err)
		}
	})
	svc := service("web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	})
	cs := fake.NewClientset(svc, slice("web", "web-1", 8080, ep{"10.42.0.5", "n1", true}))
	factory := informers.NewSharedInformerFactory(cs, 0)
	synced := make(chan SyncResult, 10)
	p, err := New(Config{NodeName: "n1", ClusterCIDR: "10.42.0.0/16", Table: name, ClusterDNS: "10.43.0.10", DNSTarget: "10.42.0.1:53",
		OnSync: func(r SyncResult) { synced <- r }}, factory)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	go func() { _ = p.Run(ctx) }()
	wait := func(what string) SyncResult {
		t.Helper()
		select {
		case r := <-synced:
			if r.Err != nil {
				t.Fatalf("%s: %v", what, r.Err)
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no sync", what)
		}
		return SyncResult{}
	}
	wait("first sync")
	list := func() string {
		out, err := exec.Command("nft", "list", "table", "ip", name).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v: %s", err, out)
		}
		return string(out)
	}
	out := list()
	for _, want := range []string{"dnat to 10.42.0.5:8080", "10.43.0.20 . tcp . 80", "tcp . 30080", "dnat to 10.42.0.1:53", "update @affinity-"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !p.Programmed("10.42.0.5:8080") {
		t.Error("endpoint not reported as programmed")
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, slice("web", "web-1", 8080, ep{"10.42.0.6", "n1", true}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := wait("endpoint change")
	if r.Operations > 16 {
		t.Errorf("an endpoint change took %d operations", r.Operations)
	}
	out = list()
	if !strings.Contains(out, "dnat to 10.42.0.6:8080") || strings.Contains(out, "10.42.0.5") {
		t.Errorf("table after the change:\n%s", out)
	}
}

func udpService(name string) *corev1.Service {
	return service(name, func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, NodePort: 30053, Protocol: corev1.ProtocolUDP}}
	})
}

func udpSlice(name string, ips ...string) *discoveryv1.EndpointSlice {
	s := slice(name, name, 5353)
	s.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To[int32](5353), Protocol: ptr.To(corev1.ProtocolUDP)}}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

func TestStaleUDPFlowsAreCleared(t *testing.T) {
	svc := udpService("dns")
	none := computeRules(input([]*corev1.Service{svc}, udpSlice("dns")), nil)
	two := computeRules(input([]*corev1.Service{svc}, udpSlice("dns", "10.42.0.5", "10.42.0.6")), none)
	// Endpoints appear: flows made while there were none are cleared.
	want := []flow{{addr: "10.43.0.20", port: 53}, {port: 30053}}
	if got := staleFlows(none, two); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("endpoints appearing: clear %v, want %v", got, want)
	}
	// One leaves: its flows go, the other's stay.
	one := computeRules(input([]*corev1.Service{svc}, udpSlice("dns", "10.42.0.6")), two)
	want = []flow{{addr: "10.43.0.20", port: 53, endpoint: "10.42.0.5"}, {port: 30053, endpoint: "10.42.0.5"}}
	if got := staleFlows(two, one); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("endpoint leaving: clear %v, want %v", got, want)
	}
	// TCP services and unchanged fragments clear nothing.
	if got := staleFlows(one, computeRules(input([]*corev1.Service{svc}, udpSlice("dns", "10.42.0.6")), one)); len(got) != 0 {
		t.Errorf("nothing changed, yet %v cleared", got)
	}
	tcp := computeRules(input([]*corev1.Service{service("web", nil)}, slice("web", "web", 80, ep{"10.42.0.5", "n1", true})), nil)
	if got := staleFlows(tcp, computeRules(input([]*corev1.Service{service("web", nil)}), tcp)); len(got) != 0 {
		t.Errorf("TCP endpoint leaving cleared %v", got)
	}
}

// TestConntrackEntriesOfGoneEndpointsAreDeleted deletes real conntrack
// entries, in a network namespace of its own.
func TestConntrackEntriesOfGoneEndpointsAreDeleted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	netnstest.Do(t, netnstest.New(t), func() {
		mk := func(src, dst, ep string, sport uint16) {
			t.Helper()
			f := &netlink.ConntrackFlow{FamilyType: unix.AF_INET, TimeOut: 100,
				Forward: netlink.IPTuple{SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4(), Protocol: unix.IPPROTO_UDP, SrcPort: sport, DstPort: 53},
				Reverse: netlink.IPTuple{SrcIP: net.ParseIP(ep).To4(), DstIP: net.ParseIP(src).To4(), Protocol: unix.IPPROTO_UDP, SrcPort: 5353, DstPort: sport}}
			if err := netlink.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
				t.Fatalf("create conntrack entry: %v", err)
			}
		}
		mk("10.42.0.9", "10.43.0.20", "10.42.0.5", 40000)
		mk("10.42.0.9", "10.43.0.20", "10.42.0.6", 40001)
		mk("10.42.0.9", "10.43.0.21", "10.42.0.5", 40002)
		if err := (netlinkConntrack{}).DeleteUDP([]flow{{addr: "10.43.0.20", port: 53, endpoint: "10.42.0.5"}}); err != nil {
			t.Fatal(err)
		}
		flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, f := range flows {
			left = append(left, fmt.Sprintf("%s->%s", f.Forward.DstIP, f.Reverse.SrcIP))
		}
		slices.Sort(left)
		if want := []string{"10.43.0.20->10.42.0.6", "10.43.0.21->10.42.0.5"}; !slices.Equal(left, want) {
			t.Errorf("entries left %v, want %v", left, want)
		}
	})
}

// TestSamePortTCPAndUDP follows the conformance spec "should serve
// endpoints on same port and different protocols": port 80 over TCP and
// over UDP are separate service ports with their own chains; once the
// Service drops one, traffic to it is rejected at the cluster IP instead
// of leaving the node for an address nobody owns.
func TestSamePortTCPAndUDP(t *testing.T) {
	both := []corev1.ServicePort{
		{Name: "tcp-port", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP},
		{Name: "udp-port", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolUDP},
	}
	svc := func(ports ...corev1.ServicePort) *corev1.Service {
		return service("multi", func(s *corev1.Service) { s.Spec.Ports = ports })
	}
	sl := slice("multi", "multi-1", 80, ep{"10.42.0.5", "n1", true})
	sl.Ports = []discoveryv1.EndpointPort{
		{Name: ptr.To("tcp-port"), Port: ptr.To[int32](80), Protocol: ptr.To(corev1.ProtocolTCP)},
		{Name: ptr.To("udp-port"), Port: ptr.To[int32](80), Protocol: ptr.To(corev1.ProtocolUDP)},
	}
	r := computeRules(input([]*corev1.Service{svc(both...)}, sl), nil)
	m := r.merged()
	tcp, udp := m.maps[serviceIPsMap]["10.43.0.20 . tcp . 80"], m.maps[serviceIPsMap]["10.43.0.20 . udp . 80"]
	if !strings.HasPrefix(tcp, "goto service-") || !strings.HasPrefix(udp, "goto service-") || tcp == udp {
		t.Fatalf("service-ips: tcp %q, udp %q; want a chain each", tcp, udp)
	}
	for verdict, want := range map[string]string{tcp: "meta l4proto tcp dnat to 10.42.0.5:80", udp: "meta l4proto udp dnat to 10.42.0.5:80"} {
		rules := m.chains[strings.TrimPrefix(verdict, "goto ")]
		if len(rules) == 0 || rules[len(rules)-1] != want {
			t.Errorf("%s: %v, want it to end with %q", verdict, rules, want)
		}
	}
	if !r.clusterIPs["10.43.0.20"] {
		t.Errorf("cluster-ips = %v, want 10.43.0.20", r.clusterIPs)
	}

	fake := knftables.NewFake(knftables.IPv4Family, "skiff-test")
	tab := &table{nft: fake, serviceCIDR: "10.43.0.0/16"}
	ctx := context.Background()
	if _, err := tab.apply(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ports      []corev1.ServicePort
		has, hasnt string
	}{
		{both[:1], "10.43.0.20 . tcp . 80", "10.43.0.20 . udp . 80"},
		{both[1:], "10.43.0.20 . udp . 80", "10.43.0.20 . tcp . 80"},
	} {
		if _, err := tab.apply(ctx, computeRules(input([]*corev1.Service{svc(tc.ports...)}, sl), tab.installed)); err != nil {
			t.Fatal(err)
		}
		dump := fake.Dump()
		for _, want := range []string{
			"add element ip skiff-test service-ips { " + tc.has,
			"add element ip skiff-test cluster-ips { 10.43.0.20 }",
			"add rule ip skiff-test cluster-ips-check ip daddr @cluster-ips reject",
			// Addresses of the range no Service holds: dropped, as upstream.
			"add rule ip skiff-test cluster-ips-check ip daddr 10.43.0.0/16 drop",
			"add rule ip skiff-test filter-output-post-dnat ct state new jump cluster-ips-check",
			"add rule ip skiff-test filter-forward ct state new jump cluster-ips-check",
		} {
			if !strings.Contains(dump, want) {
				t.Errorf("ports %v: table lacks %q:\n%s", tc.ports, want, dump)
			}
		}
		if strings.Contains(dump, "service-ips { "+tc.hasnt) {
			t.Errorf("ports %v: table still sends %s", tc.ports, tc.hasnt)
		}
	}
	// The Service gone, its cluster IP is no longer rejected here.
	if _, err := tab.apply(ctx, computeRules(input(nil), tab.installed)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fake.Dump(), "cluster-ips { 10.43.0.20 }") {
		t.Error("a deleted Service's cluster IP stays in cluster-ips")
	}
}
