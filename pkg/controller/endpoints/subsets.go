package endpoints

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/net"

	"github.com/skiff/skiff/pkg/controller/podendpoint"
)

// maxCapacity bounds the addresses of one Endpoints object (upstream's
// 1000); the rest are dropped and the object is annotated
// endpoints.kubernetes.io/over-capacity: truncated.
const maxCapacity = 1000

// subsets computes a Service's subsets from the pods its selector matches:
// every port each pod serves, grouped and sorted by pack.
func subsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	var entries []entry
	for _, p := range pods {
		if !podendpoint.Included(p, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		addr, ok := address(svc, p)
		if !ok {
			continue // no IP of the Service's family
		}
		ready := svc.Spec.PublishNotReadyAddresses || podendpoint.Ready(p)
		if len(svc.Spec.Ports) == 0 {
			// Only headless Services may have no ports: their addresses
			// are listed without any.
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				entries = append(entries, entry{addr: addr, ready: ready})
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			port, ok := podendpoint.Port(p, sp)
			if !ok {
				continue // the pod has no port of that name
			}
			ep := corev1.EndpointPort{Name: sp.Name, Port: port, Protocol: podendpoint.Protocol(sp), AppProtocol: sp.AppProtocol}
			entries = append(entries, entry{addr: addr, port: &ep, ready: ready})
		}
	}
	return pack(entries)
}

// address is the pod's address for the Service: its IP of the Service's
// first IP family (of its cluster IP, or of the pod's first IP when the
// Service says neither).
func address(svc *corev1.Service, p *corev1.Pod) (corev1.EndpointAddress, bool) {
	ips := podendpoint.IPs(p)
	var v6 bool
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		v6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case !podendpoint.Headless(svc):
		v6 = net.IsIPv6String(svc.Spec.ClusterIP)
	default:
		v6 = net.IsIPv6String(ips[0])
	}
	for _, ip := range ips {
		if net.IsIPv6String(ip) == v6 {
			a := corev1.EndpointAddress{
				IP:        ip,
				Hostname:  podendpoint.Hostname(p, svc),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
			}
			if p.Spec.NodeName != "" {
				a.NodeName = &p.Spec.NodeName
			}
			return a, true
		}
	}
	return corev1.EndpointAddress{}, false
}

// entry is one address serving one port (nil: a portless headless
// Service).
type entry struct {
	addr  corev1.EndpointAddress
	port  *corev1.EndpointPort
	ready bool
}

// pack groups entries into subsets as upstream's RepackSubsets does: the
// ports served by exactly the same addresses (with the same readiness)
// share a subset. An address listed twice for a port is ready only if
// both say so. Addresses are sorted by IP and pod UID, ports by name,
// port and protocol, subsets by their first port, so equal inputs always
// give equal output.
func pack(entries []entry) []corev1.EndpointSubset {
	type group struct {
		port  *corev1.EndpointPort
		addrs map[string]*entry // by address key
	}
	byPort := map[string]*group{}
	for i := range entries {
		e := &entries[i]
		pk := portKey(e.port)
		g := byPort[pk]
		if g == nil {
			g = &group{port: e.port, addrs: map[string]*entry{}}
			byPort[pk] = g
		}
		ak := addressKey(&e.addr)
		if prev, ok := g.addrs[ak]; ok {
			// Not ready wins.
			if !e.ready && prev.ready {
				g.addrs[ak] = e
			}
			continue
		}
		g.addrs[ak] = e
	}
	// Ports with the same addresses share a subset.
	type subset struct {
		ports []corev1.EndpointPort
		addrs map[string]*entry
	}
	bySignature := map[string]*subset{}
	for _, g := range byPort {
		keys := make([]string, 0, len(g.addrs))
		for k, e := range g.addrs {
			keys = append(keys, k+"|"+strconv.FormatBool(e.ready))
		}
		slices.Sort(keys)
		sig := strings.Join(keys, "\n")
		s := bySignature[sig]
		if s == nil {
			s = &subset{addrs: g.addrs}
			bySignature[sig] = s
		}
		if g.port != nil {
			s.ports = append(s.ports, *g.port)
		}
	}
	out := make([]corev1.EndpointSubset, 0, len(bySignature))
	for _, s := range bySignature {
		var ss corev1.EndpointSubset
		for _, e := range s.addrs {
			if e.ready {
				ss.Addresses = append(ss.Addresses, e.addr)
			} else {
				ss.NotReadyAddresses = append(ss.NotReadyAddresses, e.addr)
			}
		}
		slices.SortFunc(ss.Addresses, compareAddresses)
		slices.SortFunc(ss.NotReadyAddresses, compareAddresses)
		slices.SortFunc(s.ports, comparePorts)
		ss.Ports = s.ports
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b corev1.EndpointSubset) int {
		// Every port is in exactly one subset; only a portless headless
		// Service has a subset without ports, and then only that one.
		if len(a.Ports) == 0 || len(b.Ports) == 0 {
			return cmp.Compare(len(a.Ports), len(b.Ports))
		}
		return comparePorts(a.Ports[0], b.Ports[0])
	})
	return out
}

func portKey(p *corev1.EndpointPort) string {
	if p == nil {
		return ""
	}
	app := "-"
	if p.AppProtocol != nil {
		app = "=" + *p.AppProtocol
	}
	return p.Name + "/" + strconv.Itoa(int(p.Port)) + "/" + string(p.Protocol) + "/" + app
}

// addressKey tells addresses apart by IP and pod: host-network pods on one
// node share an IP.
func addressKey(a *corev1.EndpointAddress) string {
	if a.TargetRef == nil {
		return a.IP
	}
	return a.IP + "/" + string(a.TargetRef.UID)
}

func compareAddresses(a, b corev1.EndpointAddress) int {
	return cmp.Compare(addressKey(&a), addressKey(&b))
}

func comparePorts(a, b corev1.EndpointPort) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
}

// truncate caps the subsets at maxCapacity addresses as upstream does:
// ready addresses are kept before not-ready ones, and each subset keeps a
// share of the survivors proportional to its size. It reports whether
// anything was dropped.
func truncate(subsets []corev1.EndpointSubset) ([]corev1.EndpointSubset, bool) {
	ready, notReady := 0, 0
	for _, s := range subsets {
		ready += len(s.Addresses)
		notReady += len(s.NotReadyAddresses)
	}
	if ready+notReady <= maxCapacity {
		return subsets, false
	}
	truncateReady := ready > maxCapacity
	budget, total := maxCapacity-ready, notReady
	if truncateReady {
		budget, total = maxCapacity, ready
	}
	left := budget
	out := make([]corev1.EndpointSubset, 0, len(subsets))
	for _, s := range subsets {
		n := len(s.NotReadyAddresses)
		if truncateReady {
			n = len(s.Addresses)
		}
		keep := min(int(math.Ceil(float64(n)/float64(total)*float64(budget))), left)
		if truncateReady {
			s.Addresses = s.Addresses[:min(keep, len(s.Addresses))]
			s.NotReadyAddresses = nil
			left -= len(s.Addresses)
		} else {
			s.NotReadyAddresses = s.NotReadyAddresses[:min(keep, len(s.NotReadyAddresses))]
			left -= len(s.NotReadyAddresses)
		}
		// A subset left with no address would not validate.
		if len(s.Addresses)+len(s.NotReadyAddresses) > 0 {
			out = append(out, s)
		}
	}
	return out, true
}

// Repack canonicalises subsets as upstream's RepackSubsets does (see
// pack): what the mirroring controller reads from hand-written Endpoints.
func Repack(in []corev1.EndpointSubset) []corev1.EndpointSubset {
	var entries []entry
	for _, ss := range in {
		add := func(addrs []corev1.EndpointAddress, ready bool) {
			for _, a := range addrs {
				if len(ss.Ports) == 0 {
					entries = append(entries, entry{addr: a, ready: ready})
				}
				for i := range ss.Ports {
					entries = append(entries, entry{addr: a, port: &ss.Ports[i], ready: ready})
				}
			}
		}
		add(ss.Addresses, true)
		add(ss.NotReadyAddresses, false)
	}
	return pack(entries)
}
