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
// server, all fed by one informer factory. DNS answers on
// the pod bridge's address, which needs the node's pod range: it waits
// for it as the kubelet does, and without one runs the proxy alone.
func runServices(ctx context.Context, cfg Config, client kubernetes.Interface) error {
	log := cfg.Log.With("component", "service-proxy")
	ensureBridgeNetfilter(log)
	gw := nodeGateway(ctx, client, cfg.NodeName, podCIDRWait)
	factory := informers.NewSharedInformerFactory(client, 0)
	pcfg := proxy.Config{NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR, Table: ProxyTable(filepath.Join(cfg.DataDir, "runtime")), Log: log}
	var server *dns.Server
	if gw != "" && cfg.ClusterDNS != "" {
		pcfg.ClusterDNS, pcfg.DNSTarget = cfg.ClusterDNS, net.JoinHostPort(gw, dnsPort)
		upstreams, err := dns.HostUpstreams("/etc/resolv.conf")
		if err != nil {
			cfg.Log.Warn("cluster DNS forwards nothing", "err", err)
		}
		slices := factory.Discovery().V1().EndpointSlices().Informer()
		if err := slices.AddIndexers(dns.SliceIndexers); err != nil {
			return err
		}
		server = dns.New(dns.Config{
			Domain: cfg.ClusterDomain, Upstreams: upstreams,
			Services: factory.Core().V1().Services().Lister(), Slices: slices.GetIndexer(),
			Log: cfg.Log.With("component", "dns"),
		})
	} else {
		log.Warn("no pod network: cluster DNS is not served on this node")
	}
	var runs []func(context.Context) error
	p, err := proxy.New(pcfg, factory)
	if err != nil {
		// Most likely the nft command is missing: the node still runs
		// pods, and says loudly what it cannot do.
		log.Error("service proxy disabled: Service addresses and cluster DNS do not work on this node (is the nftables package installed?)", "err", err)
	} else {
		runs = append(runs, p.Run)
	}
	routes, err := hostgw.New(hostgw.Config{NodeName: cfg.NodeName, StateDir: hostgwDir(cfg.DataDir), Log: cfg.Log.With("component", "hostgw")}, factory)
	if err != nil {
		return err
	}
	runs = append(runs, routes.Run)
	if cfg.ClusterCIDR != "" && p != nil { // egress needs nft too
		masq, err := egress.New(egress.Config{NodeName: cfg.NodeName, Bridge: cri.Bridge(filepath.Join(cfg.DataDir, "runtime")), ClusterCIDR: cfg.ClusterCIDR,
			Log: cfg.Log.With("component", "egress")}, factory)
		if err != nil {
			return err
		}
		runs = append(runs, masq.Run)
	}
	if server != nil {
		runs = append(runs, func(ctx context.Context) error { return server.Serve(ctx, pcfg.DNSTarget) })
	}
	// The first to fail stops the others; all have returned when this does.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	errc := make(chan error, len(runs))
	for _, run := range runs {
		go func() { errc <- run(ctx) }()
	}
	var first error
	for range runs {
		if err := <-errc; err != nil && first == nil && ctx.Err() == nil {
			first = err
		}
		cancel()
	}
	return first
}

// podCIDRWait bounds how long services wait for the node's pod range.
const podCIDRWait = 10 * time.Second

// nodeGateway returns the pod bridge's address (the first of the node's
// pod range), waiting up to timeout for the range; "" if there is none.
func nodeGateway(ctx context.Context, client kubernetes.Interface, node string, timeout time.Duration) string {
	var cidr string
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		cidr = n.Spec.PodCIDR
		return cidr != "", nil
	})
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil || ipnet.IP.To4() == nil {
		return ""
	}
	gw := ipnet.IP.To4()
	gw[3]++
	return gw.String()
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
