// Package dns is skiff's cluster DNS, answering as upstream's DNS
// specification (and CoreDNS's kubernetes plugin) does from informer
// caches of Services and EndpointSlices:
//
//   - <svc>.<ns>.svc.<domain>: A/AAAA of the ClusterIP, or of every ready
//     endpoint of a headless Service; a CNAME for an ExternalName Service;
//   - <hostname>.<svc>.<ns>.svc.<domain>: an endpoint with a hostname
//     (pods with hostname and subdomain under a headless Service);
//   - _<port>._<proto>.<svc>.<ns>.svc.<domain>: SRV for named ports;
//   - <a-b-c-d>.<ns>.pod.<domain>: the pod address spelled in the name;
//   - PTR records of ClusterIPs and headless endpoints.
//
// Names in the cluster domain that do not exist get NXDOMAIN with the
// zone's SOA (so resolvers cache the negative answer); other names are
// forwarded to the node's upstream resolvers, with answers (negative ones
// too) cached for their TTL.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// ttl is the TTL of cluster answers (CoreDNS's default for the kubernetes
// plugin).
const ttl = 5

// SliceIndex is the EndpointSlice indexer name the server looks slices up
// by: "<namespace>/<service name>".
const SliceIndex = "service"

// SliceIndexers are the indexers the EndpointSlice informer must have.
var SliceIndexers = cache.Indexers{SliceIndex: func(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
		return []string{s.Namespace + "/" + svc}, nil
	}
	return nil, nil
}}

// Config configures the server.
type Config struct {
	// Domain is the cluster domain (cluster.local).
	Domain string
	// Upstreams are the resolvers other names go to ("ip:port").
	Upstreams []string
	Services  corelisters.ServiceLister
	// Slices is the EndpointSlice informer's indexer, with SliceIndexers.
	Slices cache.Indexer
	Clock  clock.PassiveClock
	Log    *slog.Logger
}

// Server answers DNS queries.
type Server struct {
	cfg    Config
	domain string // "<domain>."
	client *dns.Client
	cache  *answerCache
	// slices remembers parsed EndpointSlices by object (see parsed).
	slices sync.Map
	cached atomic.Int64
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d := dns.Fqdn(strings.ToLower(cfg.Domain))
	return &Server{cfg: cfg, domain: d, client: &dns.Client{Timeout: 2 * time.Second}, cache: newAnswerCache(cfg.Clock, 10000)}
}

// Serve answers on addr (UDP and TCP) until ctx ends. The address need
// not exist yet (IP_FREEBIND): a node binds its bridge's address before
// the runtime has made the bridge.
func (s *Server) Serve(ctx context.Context, addr string) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("dns: %w", err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dns on %s: %w", addr, err)
	}
	_ = udp.Shutdown()
	_ = tcp.Shutdown()
	// Shutdown refuses a server that has not started yet; closing the
	// sockets stops it either way.
	_ = pc.Close()
	_ = ln.Close()
	return err
}

// HostUpstreams returns the nameservers ("ip:port") of a resolv.conf.
func HostUpstreams(resolvConf string) ([]string, error) {
	c, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("upstream resolvers: %w", err)
	}
	out := make([]string, 0, len(c.Servers))
	for _, srv := range c.Servers {
		out = append(out, net.JoinHostPort(srv, c.Port))
	}
	return out, nil
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.Answer(req, w.RemoteAddr().Network() == "udp")
	_ = w.WriteMsg(resp)
}

// Answer returns the response to req (truncated for UDP clients when too
// large).
func (s *Server) Answer(req *dns.Msg, udp bool) *dns.Msg {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	var m *dns.Msg
	switch {
	case dns.IsSubDomain(s.domain, name):
		m = s.chase(s.cluster(req, q, name), q)
	case strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa."):
		if m = s.reverse(req, q, name); m == nil {
			m = s.forward(req)
		}
	default:
		m = s.forward(req)
	}
	if udp {
		size := 512
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	return m
}

func (s *Server) reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	return m
}

// nxdomain answers a name in the zone that does not exist.
func (s *Server) nxdomain(req *dns.Msg) *dns.Msg {
	m := s.reply(req)
	m.Rcode = dns.RcodeNameError
	m.Ns = []dns.RR{s.soa()}
	return m
}

// nodata answers a name that exists without records of the asked type.
func (s *Server) nodata(req *dns.Msg) *dns.Msg {
	m := s.reply(req)
	m.Ns = []dns.RR{s.soa()}
	return m
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: s.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "ns.dns." + s.domain, Mbox: "hostmaster." + s.domain,
		Serial: uint32(s.cfg.Clock.Now().Unix()), Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: ttl,
	}
}

// cluster answers a name under the cluster domain.
func (s *Server) cluster(req *dns.Msg, q dns.Question, name string) *dns.Msg {
	rel := strings.TrimSuffix(strings.TrimSuffix(name, s.domain), ".")
	labels := strings.Split(rel, ".")
	if rel == "" {
		return s.zoneApex(req, q)
	}
	n := len(labels)
	switch {
	case labels[n-1] == "svc":
		return s.service(req, q, labels[:n-1])
	case labels[n-1] == "pod" && n == 3:
		return s.pod(req, q, labels[0], labels[1])
	}
	return s.nxdomain(req)
}

func (s *Server) zoneApex(req *dns.Msg, q dns.Question) *dns.Msg {
	if q.Qtype == dns.TypeSOA {
		m := s.reply(req)
		m.Answer = []dns.RR{s.soa()}
		return m
	}
	return s.nodata(req)
}

// pod answers a-b-c-d.<ns>.pod.<domain> with the address in its name.
func (s *Server) pod(req *dns.Msg, q dns.Question, ipLabel, _ string) *dns.Msg {
	ip := net.ParseIP(strings.ReplaceAll(ipLabel, "-", "."))
	if ip == nil {
		ip = net.ParseIP(strings.ReplaceAll(ipLabel, "-", ":"))
	}
	if ip == nil {
		return s.nxdomain(req)
	}
	m := s.reply(req)
	if rr := addressRR(q.Name, ip, q.Qtype); rr != nil {
		m.Answer = []dns.RR{rr}
	} else {
		m.Ns = []dns.RR{s.soa()}
	}
	return m
}

// addressRR returns an A or AAAA record of ip for name when qtype asks
// for that family (or ANY), else nil.
func addressRR(name string, ip net.IP, qtype uint16) dns.RR {
	hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: ttl}
	if v4 := ip.To4(); v4 != nil {
		if qtype != dns.TypeA && qtype != dns.TypeANY {
			return nil
		}
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: v4}
	}
	if qtype != dns.TypeAAAA && qtype != dns.TypeANY {
		return nil
	}
	hdr.Rrtype = dns.TypeAAAA
	return &dns.AAAA{Hdr: hdr, AAAA: ip}
}

// endpoint is one address of a Service's EndpointSlices.
type endpoint struct {
	ip       net.IP
	hostname string
	ports    []discoveryv1.EndpointPort
}

// endpoints returns the ready endpoints of a Service (all of them when it
// publishes not-ready addresses).
func (s *Server) endpoints(svc *corev1.Service) []endpoint {
	objs, err := s.cfg.Slices.ByIndex(SliceIndex, svc.Namespace+"/"+svc.Name)
	if err != nil {
		return nil
	}
	var out []endpoint
	seen := map[string]bool{}
	for _, o := range objs {
		for _, e := range s.parsed(o.(*discoveryv1.EndpointSlice)) {
			if (!e.ready && !svc.Spec.PublishNotReadyAddresses) || seen[e.key] {
				continue
			}
			seen[e.key] = true
			out = append(out, e.endpoint)
		}
	}
	return out
}

// sliceEndpoint is an endpoint of a slice with its readiness.
type sliceEndpoint struct {
	endpoint
	key   string
	ready bool
}

// parsed returns a slice's endpoints with parsed addresses, remembered per
// slice object: the informer replaces the object when the slice changes,
// so a remembered result is never stale.
func (s *Server) parsed(sl *discoveryv1.EndpointSlice) []sliceEndpoint {
	if v, ok := s.slices.Load(sl); ok {
		return v.([]sliceEndpoint)
	}
	var out []sliceEndpoint
	for _, e := range sl.Endpoints {
		for _, a := range e.Addresses {
			ip := net.ParseIP(a)
			if ip == nil {
				continue
			}
			se := sliceEndpoint{endpoint: endpoint{ip: ip, ports: sl.Ports}, key: a, ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
			if e.Hostname != nil {
				se.hostname = *e.Hostname
			}
			out = append(out, se)
		}
	}
	if s.cached.Add(1) > 10000 {
		// Old objects pile up as slices change: start over now and then.
		s.slices.Clear()
		s.cached.Store(0)
	}
	s.slices.Store(sl, out)
	return out
}

// service answers names under svc.<domain>: labels are what precede
// "svc", e.g. [name ns], [host name ns], [_port _proto name ns].
func (s *Server) service(req *dns.Msg, q dns.Question, labels []string) *dns.Msg {
	n := len(labels)
	if n < 2 {
		if n == 1 && s.namespaceExists(labels[0]) {
			return s.nodata(req)
		}
		return s.nxdomain(req)
	}
	ns, name := labels[n-1], labels[n-2]
	svc, err := s.cfg.Services.Services(ns).Get(name)
	if err != nil {
		return s.nxdomain(req)
	}
	base := name + "." + ns + ".svc." + s.domain
	switch n {
	case 2:
		return s.serviceRecords(req, q, svc, base)
	case 3:
		return s.endpointRecords(req, q, svc, labels[0], base)
	case 4:
		if strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_") {
			return s.srv(req, q, svc, strings.TrimPrefix(labels[0], "_"), strings.TrimPrefix(labels[1], "_"), base)
		}
	}
	return s.nxdomain(req)
}

func (s *Server) namespaceExists(ns string) bool {
	l, err := s.cfg.Services.Services(ns).List(labels.Everything())
	return err == nil && len(l) > 0
}

func headless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone
}

// serviceRecords answers <svc>.<ns>.svc.<domain>.
func (s *Server) serviceRecords(req *dns.Msg, q dns.Question, svc *corev1.Service, base string) *dns.Msg {
	m := s.reply(req)
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		m.Answer = []dns.RR{&dns.CNAME{
			Hdr:    dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
			Target: dns.Fqdn(svc.Spec.ExternalName),
		}}
		return m
	}
	if q.Qtype == dns.TypeSRV {
		return s.srv(req, q, svc, "", "", base)
	}
	var ips []net.IP
	if headless(svc) {
		for _, e := range s.endpoints(svc) {
			ips = append(ips, e.ip)
		}
	} else {
		for _, c := range svc.Spec.ClusterIPs {
			if ip := net.ParseIP(c); ip != nil {
				ips = append(ips, ip)
			}
		}
	}
	for _, ip := range ips {
		if rr := addressRR(q.Name, ip, q.Qtype); rr != nil {
			m.Answer = append(m.Answer, rr)
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{s.soa()}
	}
	return m
}

// endpointName is an endpoint's label under its Service: its hostname, or
// its address with dashes.
func endpointName(e endpoint) string {
	if e.hostname != "" {
		return e.hostname
	}
	if v4 := e.ip.To4(); v4 != nil {
		return strings.ReplaceAll(v4.String(), ".", "-")
	}
	return strings.ReplaceAll(e.ip.String(), ":", "-")
}

// endpointRecords answers <host>.<svc>.<ns>.svc.<domain>.
func (s *Server) endpointRecords(req *dns.Msg, q dns.Question, svc *corev1.Service, host, base string) *dns.Msg {
	m := s.reply(req)
	found := false
	for _, e := range s.endpoints(svc) {
		if endpointName(e) != host {
			continue
		}
		found = true
		if rr := addressRR(q.Name, e.ip, q.Qtype); rr != nil {
			m.Answer = append(m.Answer, rr)
		}
	}
	if !found {
		return s.nxdomain(req)
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{s.soa()}
	}
	return m
}

// srv answers SRV queries: for a ClusterIP Service the target is the
// Service's name, for a headless one each endpoint's; port and proto
// empty list every named port.
func (s *Server) srv(req *dns.Msg, q dns.Question, svc *corev1.Service, port, proto string, base string) *dns.Msg {
	m := s.reply(req)
	if q.Qtype != dns.TypeSRV && q.Qtype != dns.TypeANY {
		m.Ns = []dns.RR{s.soa()}
		return m
	}
	matches := func(name string, p corev1.Protocol) bool {
		if port == "" {
			return name != ""
		}
		return name == port && strings.EqualFold(string(p), proto)
	}
	hdr := dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl}
	if !headless(svc) {
		for _, p := range svc.Spec.Ports {
			if matches(p.Name, p.Protocol) {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr, Priority: 0, Weight: 100, Port: uint16(p.Port), Target: base})
			}
		}
		for _, ip := range svc.Spec.ClusterIPs {
			if rr := addressRR(base, net.ParseIP(ip), dns.TypeANY); rr != nil && len(m.Answer) > 0 {
				m.Extra = append(m.Extra, rr)
			}
		}
	} else {
		for _, e := range s.endpoints(svc) {
			target := endpointName(e) + "." + base
			added := false
			for _, p := range e.ports {
				if p.Name == nil || p.Port == nil {
					continue
				}
				proto := corev1.ProtocolTCP
				if p.Protocol != nil {
					proto = *p.Protocol
				}
				if matches(*p.Name, proto) {
					m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr, Priority: 0, Weight: 100, Port: uint16(*p.Port), Target: target})
					added = true
				}
			}
			if added {
				if rr := addressRR(target, e.ip, dns.TypeANY); rr != nil {
					m.Extra = append(m.Extra, rr)
				}
			}
		}
	}
	if len(m.Answer) == 0 {
		if port != "" {
			return s.nxdomain(req)
		}
		m.Ns = []dns.RR{s.soa()}
	}
	return m
}

// reverse answers PTR queries for ClusterIPs and headless endpoints; nil
// when the address is not the cluster's.
func (s *Server) reverse(req *dns.Msg, q dns.Question, name string) *dns.Msg {
	if q.Qtype != dns.TypePTR {
		return nil
	}
	ip := reverseIP(name)
	if ip == nil {
		return nil
	}
	svcs, err := s.cfg.Services.List(labels.Everything())
	if err != nil {
		return nil
	}
	var targets []string
	for _, svc := range svcs {
		base := svc.Name + "." + svc.Namespace + ".svc." + s.domain
		if headless(svc) {
			for _, e := range s.endpoints(svc) {
				if e.ip.Equal(ip) {
					targets = append(targets, endpointName(e)+"."+base)
				}
			}
			continue
		}
		for _, c := range svc.Spec.ClusterIPs {
			if net.ParseIP(c).Equal(ip) {
				targets = append(targets, base)
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	m := s.reply(req)
	for _, t := range targets {
		m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: t})
	}
	return m
}

// reverseIP parses a reverse-lookup name back into an address.
func reverseIP(name string) net.IP {
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa."); ok {
		parts := strings.Split(v4, ".")
		if len(parts) != 4 {
			return nil
		}
		for i, j := 0, 3; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
		return net.ParseIP(strings.Join(parts, ".")).To4()
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa."); ok {
		nib := strings.Split(v6, ".")
		if len(nib) != 32 {
			return nil
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			b.WriteString(nib[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		return net.ParseIP(b.String())
	}
	return nil
}

// forward sends req to the upstream resolvers, answering from the cache
// while a cached answer lives.
// maxChase bounds how many CNAMEs (ExternalName Services) an answer
// follows.
const maxChase = 8

// chase completes an answer that ends in a CNAME (an ExternalName
// Service) with the target's records of the asked type, from the cluster
// or from the upstream resolvers, as CoreDNS does: stub resolvers in pods
// do not chase CNAMEs themselves.
func (s *Server) chase(m *dns.Msg, q dns.Question) *dns.Msg {
	if q.Qtype == dns.TypeCNAME || q.Qtype == dns.TypeANY {
		return m
	}
	seen := map[string]bool{strings.ToLower(q.Name): true}
	for range maxChase {
		if len(m.Answer) == 0 {
			return m
		}
		c, ok := m.Answer[len(m.Answer)-1].(*dns.CNAME)
		target := ""
		if ok {
			target = strings.ToLower(c.Target)
		}
		if !ok || seen[target] {
			return m
		}
		seen[target] = true
		sub := new(dns.Msg)
		sub.SetQuestion(target, q.Qtype)
		var r *dns.Msg
		if dns.IsSubDomain(s.domain, target) {
			r = s.cluster(sub, sub.Question[0], target)
		} else {
			r = s.forward(sub)
		}
		m.Answer = append(m.Answer, r.Answer...)
		if r.Rcode == dns.RcodeNameError {
			m.Rcode, m.Ns = r.Rcode, r.Ns
		}
	}
	return m
}

func (s *Server) forward(req *dns.Msg) *dns.Msg {
	q := req.Question[0]
	key := cacheKey(q, req.CheckingDisabled)
	if m := s.cache.get(key); m != nil {
		m.Id = req.Id
		return m
	}
	var lastErr error
	for _, up := range s.cfg.Upstreams {
		out := req.Copy()
		resp, _, err := s.client.Exchange(out, up)
		if err == nil && resp.Truncated {
			tcp := &dns.Client{Net: "tcp", Timeout: s.client.Timeout}
			resp, _, err = tcp.Exchange(out, up)
		}
		if err != nil {
			lastErr = err
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			s.cache.put(key, resp)
		}
		resp.Id = req.Id
		return resp
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	if lastErr == nil {
		lastErr = errors.New("no upstream resolvers")
	}
	s.cfg.Log.Debug("forward failed", "name", q.Name, "err", lastErr)
	return m
}

func cacheKey(q dns.Question, cd bool) string {
	return fmt.Sprintf("%s/%d/%d/%t", strings.ToLower(q.Name), q.Qtype, q.Qclass, cd)
}

// answerCache keeps forwarded answers for their TTL (negative ones for the
// SOA's minimum), at most max of them.
type answerCache struct {
	clock clock.PassiveClock
	max   int
	mu    sync.Mutex
	m     map[string]cached
}

type cached struct {
	msg     *dns.Msg
	expires time.Time
}

func newAnswerCache(clk clock.PassiveClock, max int) *answerCache {
	return &answerCache{clock: clk, max: max, m: map[string]cached{}}
}

func (c *answerCache) get(key string) *dns.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil
	}
	now := c.clock.Now()
	if !now.Before(e.expires) {
		delete(c.m, key)
		return nil
	}
	m := e.msg.Copy()
	left := uint32(e.expires.Sub(now) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype != dns.TypeOPT {
				rr.Header().Ttl = left
			}
		}
	}
	return m
}

func (c *answerCache) put(key string, m *dns.Msg) {
	t := minTTL(m)
	if t == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m { // drop an arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[key] = cached{msg: m.Copy(), expires: c.clock.Now().Add(time.Duration(t) * time.Second)}
}

// minTTL is how long an answer may be cached: its smallest TTL, or for a
// negative answer the SOA's minimum.
func minTTL(m *dns.Msg) uint32 {
	var t uint32
	first := true
	consider := func(v uint32) {
		if first || v < t {
			t, first = v, false
		}
	}
	for _, rr := range m.Answer {
		consider(rr.Header().Ttl)
	}
	if len(m.Answer) == 0 {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				consider(min(soa.Minttl, soa.Hdr.Ttl))
			}
		}
	}
	return min(t, 3600)
}
