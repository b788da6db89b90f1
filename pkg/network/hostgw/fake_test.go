package hostgw

import (
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeNetlink is a routing table with the kernel's matching rules for
// what hostgw does: a route is keyed by table, destination and metric
// (so owners with different metrics hold separate routes to one
// destination); a delete matches the protocol and metric when given.
// It records every change as an action.
type fakeNetlink struct {
	mu      sync.Mutex
	routes  []netlink.Route
	addrs   []netip.Addr
	actions []string
	// failReplace makes RouteReplace of that destination fail.
	failReplace map[string]error
}

var _ Netlink = (*fakeNetlink)(nil)

func table(r netlink.Route) int {
	if r.Table == 0 {
		return unix.RT_TABLE_MAIN
	}
	return r.Table
}

func (f *fakeNetlink) RouteListFiltered(_ int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netlink.Route
	for _, r := range f.routes {
		if mask&netlink.RT_FILTER_TABLE != 0 && table(r) != table(*filter) {
			continue
		}
		if mask&netlink.RT_FILTER_PROTOCOL != 0 && r.Protocol != filter.Protocol {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeNetlink) RouteReplace(route *netlink.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failReplace[route.Dst.String()]; err != nil {
		return err
	}
	f.actions = append(f.actions, fmt.Sprintf("replace %s via %s metric %d proto %d", route.Dst, route.Gw, route.Priority, route.Protocol))
	for i, r := range f.routes {
		if table(r) == table(*route) && r.Dst.String() == route.Dst.String() && r.Priority == route.Priority {
			f.routes[i] = *route
			return nil
		}
	}
	f.routes = append(f.routes, *route)
	return nil
}

func (f *fakeNetlink) RouteDel(route *netlink.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.routes {
		if table(r) == table(*route) && r.Dst.String() == route.Dst.String() &&
			(route.Priority == 0 || r.Priority == route.Priority) &&
			(route.Protocol == 0 || r.Protocol == route.Protocol) {
			f.routes = append(f.routes[:i], f.routes[i+1:]...)
			f.actions = append(f.actions, fmt.Sprintf("delete %s metric %d", route.Dst, route.Priority))
			return nil
		}
	}
	return syscall.ESRCH
}

func (f *fakeNetlink) AddrList(netlink.Link, int) ([]netlink.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netlink.Addr
	for _, a := range f.addrs {
		out = append(out, netlink.Addr{IPNet: prefixIPNet(netip.PrefixFrom(a, 32))})
	}
	return out, nil
}

// takeActions returns the actions recorded since the last call.
func (f *fakeNetlink) takeActions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.actions
	f.actions = nil
	return a
}

// add puts a route in the table without recording an action.
func (f *fakeNetlink) add(dst, gw string, proto netlink.RouteProtocol, metric int) {
	p := netip.MustParsePrefix(dst)
	f.routes = append(f.routes, netlink.Route{Dst: prefixIPNet(p), Gw: netip.MustParseAddr(gw).AsSlice(), Protocol: proto, Priority: metric, Table: unix.RT_TABLE_MAIN})
}
