package hostgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// Protocol is the route protocol (rtm_protocol) of every route hostgw
// installs: not one of iproute2's reserved numbers (see
// /etc/iproute2/rt_protos), 'S' for skiff.
const Protocol netlink.RouteProtocol = 0x53

// DefaultResync is how often the routes are checked when Config.Resync is
// zero: routes someone else deleted, and changes of the host's
// addresses, are noticed within it.
const DefaultResync = 30 * time.Second

// key is the controller's only work item: every pass reconciles all
// routes.
const key = "routes"

// Netlink is the part of the netlink API hostgw uses; *netlink.Handle
// implements it. It is the seam between the reconciler and the kernel.
type Netlink interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
}

var _ Netlink = (*netlink.Handle)(nil)

// Config configures a Routes.
type Config struct {
	// NodeName is this node's Node: its own range is never routed.
	// Required.
	NodeName string
	// StateDir holds the list of installed routes (routes.json); it must
	// be this node's alone, and Teardown is given the same directory.
	// Created if missing. Required.
	StateDir string
	// Netlink is where routes are kept. Nil: a netlink handle in the
	// network namespace of the goroutine that calls Run, closed when Run
	// returns.
	Netlink Netlink
	// Resync is how often the routes are reconciled without an event;
	// zero means DefaultResync.
	Resync time.Duration
	// Clock drives the resync; nil means the real clock.
	Clock clock.WithTicker
	// Log receives route changes and skipped Nodes; nil means
	// slog.Default().
	Log *slog.Logger
}

// validate checks cfg and fills in the defaults.
func (cfg *Config) validate() error {
	var errs []error
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("hostgw: no node name"))
	}
	if cfg.StateDir == "" {
		errs = append(errs, errors.New("hostgw: no state directory"))
	}
	if cfg.Resync < 0 {
		errs = append(errs, fmt.Errorf("hostgw: negative resync %s", cfg.Resync))
	}
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return errors.Join(errs...)
}

// Routes keeps the host-gw routes to the other Nodes' pod ranges. Run
// owns it: its methods are not for concurrent use.
type Routes struct {
	cfg    Config
	nodes  corelisters.NodeLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]

	// Owned by the worker (one goroutine).
	nl      Netlink
	st      state
	loaded  bool
	skipped map[string]string // node -> reason last logged
}

// New returns the route controller fed by f's Node informer; f must be
// started (f.Start) for Run to make progress.
func New(cfg Config, f informers.SharedInformerFactory) (*Routes, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	nodes := f.Core().V1().Nodes()
	r := &Routes{
		cfg: cfg, nodes: nodes.Lister(), synced: nodes.Informer().HasSynced, nl: cfg.Netlink,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "hostgw", Clock: cfg.Clock}),
		skipped: map[string]string{},
	}
	enqueue := func(*corev1.Node) { r.queue.Add(key) }
	_, err := nodes.Informer().AddEventHandler(typedhandler.Funcs(enqueue,
		func(old, cur *corev1.Node) {
			if routing(old) != routing(cur) {
				r.queue.Add(key)
			}
		}, enqueue))
	if err != nil {
		return nil, fmt.Errorf("hostgw: watch nodes: %w", err)
	}
	return r, nil
}

// Run reconciles the routes until ctx ends; call it once. It returns an
// error only when it cannot start (no netlink handle, a corrupt state
// file); failed passes are logged and retried. Once it has returned it
// touches nothing, so Teardown may follow at once.
func (r *Routes) Run(ctx context.Context) error {
	if r.nl == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("hostgw: netlink: %w", err)
		}
		defer h.Close()
		r.nl = h
	}
	if err := r.load(); err != nil {
		return err
	}
	defer r.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), r.synced) {
		return nil // stopped before the cache filled
	}
	r.queue.Add(key)
	go workers.Resync(ctx, r.queue, key, r.cfg.Resync, r.cfg.Clock)
	workers.Run(ctx, r.queue, 1, r.sync, r.cfg.Log)
	return nil
}

// load reads the state file, or starts one with this owner's metric.
func (r *Routes) load() error {
	if r.loaded {
		return nil
	}
	st, ok, err := loadState(r.cfg.StateDir)
	if err != nil {
		return err
	}
	if !ok {
		st = state{Metric: metricFor(r.cfg.StateDir)}
		if err := st.save(r.cfg.StateDir); err != nil {
			return err
		}
	}
	r.st, r.loaded = st, true
	return nil
}

// sync is one reconcile pass: desired routes from the lister and the
// host's addresses, installed routes from the kernel, then the smallest
// set of changes. Safe to run any number of times.
func (r *Routes) sync(_ context.Context, _ string) error {
	if err := r.load(); err != nil {
		return err
	}
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("hostgw: list nodes: %w", err)
	}
	local, err := localAddrs(r.nl)
	if err != nil {
		return err
	}
	want, skipped := desired(nodes, r.cfg.NodeName, local)
	r.logSkipped(skipped)
	have, err := installed(r.nl, r.st.Metric)
	if err != nil {
		return err
	}
	owned := map[netip.Prefix]bool{}
	for _, d := range r.st.Destinations {
		owned[d] = true
	}
	// Write ahead: a destination is in the state file before its route
	// is in the kernel, so a crash in between leaks nothing.
	if err := r.own(owned, want); err != nil {
		return err
	}
	var errs []error
	for _, dst := range sortedKeys(want) {
		via := want[dst]
		if cur, ok := have[dst]; ok && cur == via {
			continue
		}
		if err := r.nl.RouteReplace(r.route(dst, via)); err != nil {
			errs = append(errs, fmt.Errorf("hostgw: route %s via %s: %w", dst, via, err))
			continue
		}
		if old, ok := have[dst]; ok {
			r.cfg.Log.Info("replaced route to node's pod range", "dst", dst, "via", via, "was", old)
		} else {
			r.cfg.Log.Info("added route to node's pod range", "dst", dst, "via", via)
		}
	}
	for _, dst := range sortedKeys(owned) {
		if _, ok := want[dst]; ok {
			continue
		}
		if err := del(r.nl, r.st.Metric, dst); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(owned, dst)
		if via, ok := have[dst]; ok {
			r.cfg.Log.Info("deleted route to former node's pod range", "dst", dst, "via", via)
		}
	}
	if err := r.own(owned, nil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// own makes the state file list exactly the destinations in owned plus
// those in more (adding them to owned), writing only on change.
func (r *Routes) own(owned map[netip.Prefix]bool, more map[netip.Prefix]netip.Addr) error {
	for dst := range more {
		owned[dst] = true
	}
	next := sortedKeys(owned)
	if slices.Equal(next, r.st.Destinations) {
		return nil
	}
	st := state{Metric: r.st.Metric, Destinations: next}
	if err := st.save(r.cfg.StateDir); err != nil {
		return err
	}
	r.st = st
	return nil
}

// logSkipped logs a Node's skip reason when it changes (not on every
// pass).
func (r *Routes) logSkipped(skipped map[string]string) {
	for name, why := range skipped {
		if r.skipped[name] != why && why != skipSelf {
			level := slog.LevelDebug
			if why == skipConflict {
				level = slog.LevelWarn
			}
			r.cfg.Log.Log(context.Background(), level, "no route to node's pod range", "node", name, "reason", why)
		}
	}
	r.skipped = skipped
}

// route is the netlink form of dst via gw for this owner.
func (r *Routes) route(dst netip.Prefix, via netip.Addr) *netlink.Route {
	return &netlink.Route{
		Dst:      prefixIPNet(dst),
		Gw:       net.IP(via.AsSlice()),
		Protocol: Protocol,
		Priority: r.st.Metric,
		Table:    unix.RT_TABLE_MAIN,
		Scope:    netlink.SCOPE_UNIVERSE,
		Family:   netlink.FAMILY_V4,
	}
}

// localAddrs returns the IPv4 addresses of every link of the host.
func localAddrs(nl Netlink) (map[netip.Addr]bool, error) {
	addrs, err := nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("hostgw: list addresses: %w", err)
	}
	local := map[netip.Addr]bool{}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			local[ip.Unmap()] = true
		}
	}
	return local, nil
}

// installed returns the routes in the main table with hostgw's protocol
// and the given metric: destination -> gateway.
func installed(nl Netlink, metric int) (map[netip.Prefix]netip.Addr, error) {
	rs, err := nl.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: Protocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("hostgw: list routes: %w", err)
	}
	have := map[netip.Prefix]netip.Addr{}
	for _, rt := range rs {
		if rt.Priority != metric || rt.Dst == nil {
			continue
		}
		dst, ok := ipNetPrefix(rt.Dst)
		if !ok {
			continue
		}
		gw, _ := netip.AddrFromSlice(rt.Gw)
		have[dst] = gw.Unmap()
	}
	return have, nil
}

// del deletes this owner's route to dst; a route already gone is not an
// error.
func del(nl Netlink, metric int, dst netip.Prefix) error {
	err := nl.RouteDel(&netlink.Route{
		Dst: prefixIPNet(dst), Protocol: Protocol, Priority: metric, Table: unix.RT_TABLE_MAIN, Family: netlink.FAMILY_V4,
	})
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("hostgw: delete route %s: %w", dst, err)
	}
	return nil
}

// Teardown deletes every route the hostgw whose state is in stateDir
// installed, in the network namespace of the calling goroutine, then its
// state file. Run must have returned. Nothing to do is not an error.
func Teardown(stateDir string) error {
	st, ok, err := loadState(stateDir)
	if err != nil || !ok {
		return err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("hostgw: netlink: %w", err)
	}
	defer h.Close()
	return teardown(h, stateDir, st)
}

// teardown deletes st's routes through nl and keeps in the state file
// those it could not delete.
func teardown(nl Netlink, stateDir string, st state) error {
	var errs []error
	var left []netip.Prefix
	for _, dst := range st.Destinations {
		if err := del(nl, st.Metric, dst); err != nil {
			errs = append(errs, err)
			left = append(left, dst)
		}
	}
	if len(left) > 0 {
		st.Destinations = left
		return errors.Join(append(errs, st.save(stateDir))...)
	}
	if err := os.Remove(filepath.Join(stateDir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("hostgw state: %w", err)
	}
	_ = os.Remove(stateDir) // only if nothing else lives there
	return nil
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones).Masked(), true
}

// sortedKeys returns m's prefixes in order, so passes act (and log) in a
// stable order.
func sortedKeys[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}
