// Package proxy is skiff's service proxy (kube-proxy's job) in nftables:
// it watches Services and EndpointSlices and keeps one nftables table per
// node that sends traffic for cluster IPs, node ports, external IPs and
// load-balancer IPs to the services' endpoints, with random
// equal-probability choice, ClientIP session affinity, masquerading where
// replies would otherwise miss the node, hairpin, ICMP reject for services
// without endpoints, and the Local traffic policies. The layout follows
// upstream kube-proxy's nftables mode.
//
// Every change is applied as one nftables transaction holding only what
// changed, so syncs stay cheap with thousands of services and packets
// never see a half-written state.
package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// ServiceProxyNameLabel marks Services that another proxy handles (as
// upstream, such Services are left alone).
const ServiceProxyNameLabel = "service.kubernetes.io/service-proxy-name"

// Config configures a Proxier.
type Config struct {
	// NodeName is this node: its endpoints are the local ones.
	NodeName string
	// ClusterCIDR is the pod network; traffic to cluster IPs from outside
	// it is masqueraded. Empty: never.
	ClusterCIDR string
	// ServiceCIDR is the range cluster IPs come from: traffic to an
	// address of it that no Service holds is dropped, as upstream. Empty:
	// no such rule.
	ServiceCIDR string
	// Table is the nftables table (family ip), distinct per node so that
	// several clusters can share a machine.
	Table string
	// ClusterDNS is the DNS Service's cluster IP and DNSTarget ("ip:port")
	// where this node answers it (also set later with ServeClusterDNS);
	// its Service is not proxied through endpoints.
	ClusterDNS, DNSTarget string
	// FullSyncPeriod rewrites the whole table now and then, repairing
	// anything changed behind the proxy's back (default 5 minutes).
	FullSyncPeriod time.Duration
	// OnSync, if set, is told about each sync that changed the table.
	OnSync func(SyncResult)
	// Conntrack clears stale UDP flows; nil means the kernel's table.
	Conntrack Conntrack
	Log       *slog.Logger
}

// SyncResult describes one sync.
type SyncResult struct {
	// Start and End bracket the sync; Operations counts what was sent.
	Start, End time.Time
	Operations int
	// Endpoints counts the endpoints programmed.
	Endpoints int
	Err       error
}

// Proxier keeps the table in step with the API.
type Proxier struct {
	cfg      Config
	nft      knftables.Interface
	tab      *table
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	synced   []cache.InformerSynced
	changed  chan struct{}

	mu sync.Mutex
	// installed is what the table holds after the last successful sync.
	installed *ruleset
}

// New returns a proxier fed by factory's Service and EndpointSlice
// informers (start the factory after New).
func New(cfg Config, factory informers.SharedInformerFactory) (*Proxier, error) {
	nft, err := knftables.New(knftables.IPv4Family, cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("service proxy: %w", err)
	}
	return newWith(cfg, factory, nft)
}

func newWith(cfg Config, factory informers.SharedInformerFactory, nft knftables.Interface) (*Proxier, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.FullSyncPeriod == 0 {
		cfg.FullSyncPeriod = 5 * time.Minute
	}
	if cfg.ServiceCIDR != "" {
		if p, err := netip.ParsePrefix(cfg.ServiceCIDR); err != nil || !p.Addr().Is4() {
			// A bad range must not fail every transaction.
			cfg.Log.Warn("service proxy: not an IPv4 service CIDR, unallocated cluster IPs are not dropped", "serviceCIDR", cfg.ServiceCIDR)
			cfg.ServiceCIDR = ""
		} else {
			cfg.ServiceCIDR = p.Masked().String()
		}
	}
	if cfg.Conntrack == nil {
		cfg.Conntrack = netlinkConntrack{}
	}
	p := &Proxier{cfg: cfg, nft: nft, tab: &table{nft: nft, serviceCIDR: cfg.ServiceCIDR}, changed: make(chan struct{}, 1)}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	}
	svc := factory.Core().V1().Services()
	sl := factory.Discovery().V1().EndpointSlices()
	for _, inf := range []cache.SharedIndexInformer{svc.Informer(), sl.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
		p.synced = append(p.synced, inf.HasSynced)
	}
	p.services, p.slices = svc.Lister(), sl.Lister()
	return p, nil
}

// poke asks for a sync; bursts of events coalesce into one.
func (p *Proxier) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Run syncs whenever Services or EndpointSlices change until ctx ends.
func (p *Proxier) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), p.synced...) {
		return ctx.Err()
	}
	full := time.NewTicker(p.cfg.FullSyncPeriod)
	defer full.Stop()
	var retry <-chan time.Time
	backoff := 100 * time.Millisecond
	p.poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.changed:
		case <-retry:
		case <-full.C:
			p.tab.installed = nil
		}
		if err := p.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.cfg.Log.Error("service proxy sync failed", "err", err, "retry", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		retry, backoff = nil, 100*time.Millisecond
	}
}

// sync computes the rules from the informer caches and applies the change.
func (p *Proxier) sync(ctx context.Context) error {
	start := time.Now()
	in, err := p.input()
	if err != nil {
		return err
	}
	have := p.tab.installed
	want := computeRules(in, have)
	ops, err := p.tab.apply(ctx, want)
	end := time.Now()
	if err == nil {
		p.mu.Lock()
		p.installed = want
		p.mu.Unlock()
		if flows := staleFlows(have, want); len(flows) > 0 {
			if cerr := p.cfg.Conntrack.DeleteUDP(flows); cerr != nil {
				p.cfg.Log.Warn("stale UDP flows stay until they time out", "err", cerr)
			}
		}
	}
	if ops > 0 || err != nil {
		eps := 0
		for _, f := range want.fragments {
			eps += len(f.endpoints)
		}
		p.cfg.Log.Debug("service proxy synced", "operations", ops, "endpoints", eps, "took", end.Sub(start), "err", err)
		if p.cfg.OnSync != nil {
			p.cfg.OnSync(SyncResult{Start: start, End: end, Operations: ops, Endpoints: eps, Err: err})
		}
	}
	return err
}

// input gathers the Services and their EndpointSlices.
func (p *Proxier) input() (rulesInput, error) {
	noProxyName, err := labels.NewRequirement(ServiceProxyNameLabel, selection.DoesNotExist, nil)
	if err != nil {
		return rulesInput{}, err
	}
	svcs, err := p.services.List(labels.NewSelector().Add(*noProxyName))
	if err != nil {
		return rulesInput{}, err
	}
	all, err := p.slices.List(labels.Everything())
	if err != nil {
		return rulesInput{}, err
	}
	bySvc := make(map[string][]*discoveryv1.EndpointSlice, len(svcs))
	for _, s := range all {
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			bySvc[s.Namespace+"/"+name] = append(bySvc[s.Namespace+"/"+name], s)
		}
	}
	p.mu.Lock()
	dnsIP, dnsTarget := p.cfg.ClusterDNS, p.cfg.DNSTarget
	p.mu.Unlock()
	return rulesInput{
		node: p.cfg.NodeName, clusterCIDR: p.cfg.ClusterCIDR,
		dnsIP: dnsIP, dnsTarget: dnsTarget,
		services: svcs, slices: bySvc,
	}, nil
}

// ServeClusterDNS makes the table send the cluster DNS address (ip, port
// 53, UDP and TCP) to target ("ip:port") on this node from now on.
func (p *Proxier) ServeClusterDNS(ip, target string) {
	p.mu.Lock()
	p.cfg.ClusterDNS, p.cfg.DNSTarget = ip, target
	p.mu.Unlock()
	p.poke()
}

// Programmed reports whether the table sends traffic to endpoint
// ("ip:port") for some service.
func (p *Proxier) Programmed(endpoint string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.installed == nil {
		return false
	}
	for _, f := range p.installed.fragments {
		if f.endpoints[endpoint] {
			return true
		}
	}
	return false
}

// Cleanup deletes the proxy's table, if present (without the nft
// command there can be none).
func Cleanup(ctx context.Context, tableName string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	nft, err := knftables.New(knftables.IPv4Family, tableName)
	if err != nil {
		return err
	}
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
		return fmt.Errorf("delete nftables table %s: %w", tableName, err)
	}
	return nil
}
