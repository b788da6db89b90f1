package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff/skiff/pkg/dns"
	"github.com/skiff/skiff/pkg/network/egress"
	"github.com/skiff/skiff/pkg/network/hostgw"
	"github.com/skiff/skiff/pkg/proxy"
	"github.com/skiff/skiff/pkg/runtime/cri"
)

// dnsPort is where a node's cluster DNS listens, on its pod bridge's
// address; the service proxy sends the DNS Service's traffic there.
const dnsPort = "53"

// ProxyTable is the nftables table of the node whose runtime state is
// under root (named like its bridge, so distinct per node).
func ProxyTable(root string) string { return "skiff-" + strings.TrimPrefix(cri.Bridge(root), "skf") }

// hostgwDir holds the routes the node installed to other nodes' pods.
func hostgwDir(agentDir string) string { return filepath.Join(agentDir, "hostgw") }

// runServices runs the node's share of the cluster network beyond its own
// pods: routes to other nodes' pod ranges (host-gw), masquerading of
// traffic leaving the cluster, the service proxy and the cluster DNS
// server, all fed by one informer factory. DNS answers on the pod
// bridge's address, so it starts once the node has its pod range.
func runServices(ctx context.Context, cfg Config, client kubernetes.Interface) error {
	log := cfg.Log.With("component", "service-proxy")
	ensureBridgeNetfilter(log)
	factory := informers.NewSharedInformerFactory(client, 0)
	slices := factory.Discovery().V1().EndpointSlices().Informer()
	if err := slices.AddIndexers(dns.SliceIndexers); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	p, err := proxy.New(proxy.Config{NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR, ServiceCIDR: cfg.ServiceCIDR, Table: ProxyTable(filepath.Join(cfg.DataDir, "runtime")), Log: log}, factory)
	if err != nil {
		// Most likely the nft command is missing: the node still runs
		// pods, and says loudly what it cannot do.
		log.Error("service proxy disabled: Service addresses and cluster DNS do not work on this node (is the nftables package installed?)", "err", err)
	} else {
		g.Go(func() error { return p.Run(ctx) })
	}
	routes, err := hostgw.New(hostgw.Config{NodeName: cfg.NodeName, StateDir: hostgwDir(cfg.DataDir), Log: cfg.Log.With("component", "hostgw")}, factory)
	if err != nil {
		return err
	}
	g.Go(func() error { return routes.Run(ctx) })
	if cfg.ClusterCIDR != "" && p != nil { // egress needs nft too
		masq, err := egress.New(egress.Config{NodeName: cfg.NodeName, Bridge: cri.Bridge(filepath.Join(cfg.DataDir, "runtime")), ClusterCIDR: cfg.ClusterCIDR,
			Log: cfg.Log.With("component", "egress")}, factory)
		if err != nil {
			return err
		}
		g.Go(func() error { return masq.Run(ctx) })
	}
	if p != nil && cfg.ClusterDNS != "" {
		server := dns.New(dns.Config{
			Domain: cfg.ClusterDomain, Upstreams: hostUpstreams(cfg.Log),
			Services: factory.Core().V1().Services().Lister(), Slices: slices.GetIndexer(),
			Log: cfg.Log.With("component", "dns"),
		})
		g.Go(func() error {
			gw := nodeGateway(ctx, client, cfg.NodeName, log)
			if gw == "" {
				return nil // stopped first
			}
			target := net.JoinHostPort(gw, dnsPort)
			p.ServeClusterDNS(cfg.ClusterDNS, target)
			return server.Serve(ctx, target)
		})
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	return g.Wait()
}

// hostUpstreams are the node's resolvers, where the cluster DNS sends
// other names.
func hostUpstreams(log *slog.Logger) []string {
	up, err := dns.HostUpstreams("/etc/resolv.conf")
	if err != nil {
		log.Warn("cluster DNS forwards nothing", "err", err)
	}
	return up
}

// podCIDRWait bounds how long services wait for the node's pod range.
const podCIDRWait = 10 * time.Second

// nodeGateway returns the pod bridge's address (the first of the node's
// pod range), waiting for the range as long as it takes; "" when ctx ends
// first.
func nodeGateway(ctx context.Context, client kubernetes.Interface, node string, log *slog.Logger) string {
	var gw string
	start := time.Now()
	warned := false
	_ = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			if _, ipnet, err := net.ParseCIDR(n.Spec.PodCIDR); err == nil && ipnet.IP.To4() != nil {
				ip := ipnet.IP.To4()
				ip[3]++
				gw = ip.String()
				return true, nil
			}
		}
		if !warned && time.Since(start) > podCIDRWait {
			warned = true
			log.Warn("no pod CIDR on the node yet: cluster DNS starts when it comes", "node", node)
		}
		return false, nil
	})
	return gw
}

// ensureBridgeNetfilter makes bridged traffic pass netfilter, without which
// a reply from a pod to a pod on the same bridge would skip the service
// proxy's reverse NAT (upstream requires the same of every node).
func ensureBridgeNetfilter(log *slog.Logger) {
	const knob = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("the br_netfilter module is not loaded")
		}
		log.Warn("pods may not reach services backed by pods on the same node", "err", err)
	}
}
