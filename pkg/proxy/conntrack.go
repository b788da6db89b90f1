package proxy

import (
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// flow selects UDP conntrack entries: to addr:port (any address when addr
// is empty) and, when endpoint is set, answered by that endpoint.
type flow struct {
	addr     string
	port     int32
	endpoint string
}

// Conntrack deletes conntrack entries. UDP has no connection to end: an
// entry NATed to an endpoint that is gone would keep its datagrams going
// there until it times out, and an entry made while a service had no
// endpoints would keep them from being NATed at all, so the proxier
// clears both (as upstream kube-proxy does).
type Conntrack interface {
	DeleteUDP(flows []flow) error
}

// netlinkConntrack is the kernel's conntrack table.
type netlinkConntrack struct{}

// DeleteUDP deletes the matching entries in one pass over the table.
func (netlinkConntrack) DeleteUDP(flows []flow) error {
	filters := make([]netlink.CustomConntrackFilter, 0, len(flows))
	for _, fl := range flows {
		f := &netlink.ConntrackFilter{}
		errs := []error{f.AddProtocol(unix.IPPROTO_UDP), f.AddPort(netlink.ConntrackOrigDstPort, uint16(fl.port))}
		if fl.addr != "" {
			errs = append(errs, f.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(fl.addr)))
		}
		if fl.endpoint != "" {
			errs = append(errs, f.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(fl.endpoint)))
		}
		for _, err := range errs {
			if err != nil {
				return fmt.Errorf("conntrack filter %+v: %w", fl, err)
			}
		}
		filters = append(filters, f)
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("delete conntrack entries: %w", err)
	}
	return nil
}

// staleFlows returns the UDP flows to clear after have was replaced by
// want: those answered by endpoints that left a service port, and those
// to ports that had no endpoint before and have one now.
func staleFlows(have, want *ruleset) []flow {
	if have == nil {
		return nil
	}
	var out []flow
	for id, h := range have.fragments {
		w := want.fragments[id]
		if h == w {
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(h.udp)) {
			hp := h.udp[key]
			var wp udpPort
			if w != nil {
				wp = w.udp[key]
			}
			for _, ep := range hp.endpoints {
				if slices.Contains(wp.endpoints, ep) {
					continue
				}
				for _, a := range hp.addrs {
					out = append(out, flow{addr: a, port: hp.port, endpoint: ep})
				}
				if hp.nodePort > 0 {
					out = append(out, flow{port: hp.nodePort, endpoint: ep})
				}
			}
		}
	}
	for id, w := range want.fragments {
		h := have.fragments[id]
		if h == w {
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(w.udp)) {
			wp := w.udp[key]
			if len(wp.endpoints) == 0 || (h != nil && len(h.udp[key].endpoints) > 0) {
				continue
			}
			for _, a := range wp.addrs {
				out = append(out, flow{addr: a, port: wp.port})
			}
			if wp.nodePort > 0 {
				out = append(out, flow{port: wp.nodePort})
			}
		}
	}
	return out
}
