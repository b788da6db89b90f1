package hostgw

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Skip reasons, as logged.
const (
	skipSelf     = "this node"
	skipOwnCIDR  = "pod CIDR is this node's own"
	skipNoCIDR   = "no IPv4 pod CIDR"
	skipNoIP     = "no IPv4 InternalIP"
	skipLocalIP  = "InternalIP is an address of this host"
	skipConflict = "pod CIDR also claimed by another node"
)

// desired computes the routes hostgw should hold: destination -> gateway,
// for every Node other than self that is not skipped, with the reason
// each skipped Node was left out. local holds this host's addresses. It
// does no I/O, so tests feed it Nodes directly.
func desired(nodes []*corev1.Node, self string, local map[netip.Addr]bool) (map[netip.Prefix]netip.Addr, map[string]string) {
	// Sorted by name, so two Nodes claiming one range resolve the same
	// way on every pass.
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	own := map[netip.Prefix]bool{}
	for _, n := range nodes {
		if n.Name == self {
			for _, p := range podCIDRs(n) {
				own[p] = true
			}
		}
	}
	want := map[netip.Prefix]netip.Addr{}
	owner := map[netip.Prefix]string{}
	skipped := map[string]string{}
	for _, n := range nodes {
		if n.Name == self {
			skipped[n.Name] = skipSelf
			continue
		}
		cidrs := podCIDRs(n)
		if len(cidrs) == 0 {
			skipped[n.Name] = skipNoCIDR
			continue
		}
		ip, ok := internalIP(n)
		if !ok {
			skipped[n.Name] = skipNoIP
			continue
		}
		if local[ip] {
			skipped[n.Name] = skipLocalIP
			continue
		}
		for _, p := range cidrs {
			switch {
			case own[p]:
				skipped[n.Name] = skipOwnCIDR
			case owner[p] != "":
				skipped[n.Name] = skipConflict
			default:
				want[p], owner[p] = ip, n.Name
			}
		}
	}
	return want, skipped
}

// podCIDRs returns n's IPv4 pod ranges (spec.podCIDRs, else
// spec.podCIDR), masked.
func podCIDRs(n *corev1.Node) []netip.Prefix {
	raw := n.Spec.PodCIDRs
	if len(raw) == 0 && n.Spec.PodCIDR != "" {
		raw = []string{n.Spec.PodCIDR}
	}
	var out []netip.Prefix
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// internalIP returns n's first IPv4 InternalIP.
func internalIP(n *corev1.Node) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err == nil && ip.Unmap().Is4() {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// routing returns what of n decides its route, to drop Node updates
// (status heartbeats, mostly) that cannot change one.
func routing(n *corev1.Node) string {
	var b strings.Builder
	for _, p := range podCIDRs(n) {
		b.WriteString(p.String() + ",")
	}
	ip, _ := internalIP(n)
	b.WriteString(ip.String())
	return b.String()
}
