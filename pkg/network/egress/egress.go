package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// chain is the table's one chain.
const chain = "postrouting"

// multicast is never masqueraded.
const multicast = "224.0.0.0/4"

// DefaultResync is how often Run rewrites the table without an event
// when Config.Resync is zero, so a table someone flushed comes back.
const DefaultResync = time.Minute

// TableName is the nftables table (family ip) of the node whose pod
// bridge is bridge.
func TableName(bridge string) string { return "skiff-egress-" + bridge }

// Config configures a Masquerade.
type Config struct {
	// NodeName is this node's Node, whose spec.podCIDR Run follows.
	// Required for Run.
	NodeName string
	// Bridge is the node's pod bridge; it names the table (TableName).
	// Required.
	Bridge string
	// ClusterCIDR is the IPv4 range of every pod of the cluster
	// (--cluster-cidr): traffic to it is never masqueraded. Required.
	ClusterCIDR string
	// NFT runs the transactions. Nil: the nft binary, for table
	// TableName(Bridge) of family ip (New fails without nft).
	NFT knftables.Interface
	// Resync is how often Run rewrites the table without an event; zero
	// means DefaultResync.
	Resync time.Duration
	// Clock drives the resync; nil means the real clock.
	Clock clock.WithTicker
	// Log receives table changes; nil means slog.Default().
	Log *slog.Logger
}

// validate checks cfg and fills in the defaults.
func (cfg *Config) validate() error {
	var errs []error
	if cfg.Bridge == "" {
		errs = append(errs, errors.New("egress: no bridge name"))
	}
	if p, err := netip.ParsePrefix(cfg.ClusterCIDR); err != nil {
		errs = append(errs, fmt.Errorf("egress: cluster CIDR: %w", err))
	} else if !p.Addr().Is4() {
		errs = append(errs, fmt.Errorf("egress: cluster CIDR %s: only IPv4 is supported", cfg.ClusterCIDR))
	}
	if cfg.Resync < 0 {
		errs = append(errs, fmt.Errorf("egress: negative resync %s", cfg.Resync))
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

// Masquerade keeps one node's egress table.
type Masquerade struct {
	cfg     Config
	cluster netip.Prefix
	nodes   corelisters.NodeLister
	synced  cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]

	// mu serializes Syncs (Run's and callers'), so transactions never
	// interleave; it guards applied.
	mu      sync.Mutex
	applied string // the pod CIDR last written, for logging changes
}

// New returns the Masquerade for cfg. f, when not nil, feeds Run with
// the Node informer (New must be called before f.Start); with a nil f
// only Sync may be used.
func New(cfg Config, f informers.SharedInformerFactory) (*Masquerade, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.NFT == nil {
		nft, err := knftables.New(knftables.IPv4Family, TableName(cfg.Bridge))
		if err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
		cfg.NFT = nft
	}
	m := &Masquerade{cfg: cfg, cluster: netip.MustParsePrefix(cfg.ClusterCIDR).Masked()}
	if f == nil {
		return m, nil
	}
	if cfg.NodeName == "" {
		return nil, errors.New("egress: no node name")
	}
	nodes := f.Core().V1().Nodes()
	m.nodes, m.synced = nodes.Lister(), nodes.Informer().HasSynced
	m.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "egress", Clock: cfg.Clock})
	enqueue := func(n *corev1.Node) {
		if n.Name == cfg.NodeName {
			m.queue.Add(n.Name)
		}
	}
	_, err := nodes.Informer().AddEventHandler(typedhandler.Funcs(enqueue,
		func(old, cur *corev1.Node) {
			if old.Spec.PodCIDR != cur.Spec.PodCIDR {
				enqueue(cur)
			}
		}, nil))
	if err != nil {
		return nil, fmt.Errorf("egress: watch nodes: %w", err)
	}
	return m, nil
}

// rule is the masquerade rule for podCIDR.
func (m *Masquerade) rule(pod netip.Prefix) string {
	return fmt.Sprintf("ip saddr %s ip daddr != %s ip daddr != %s masquerade fully-random", pod, m.cluster, multicast)
}

// Sync makes the table masquerade traffic from podCIDR leaving the
// cluster CIDR, replacing whatever it held, in one transaction. It is
// safe to call at any time, also while Run runs.
func (m *Masquerade) Sync(ctx context.Context, podCIDR string) error {
	pod, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return fmt.Errorf("egress: pod CIDR: %w", err)
	}
	pod = pod.Masked()
	if !pod.Addr().Is4() || !m.cluster.Contains(pod.Addr()) || pod.Bits() < m.cluster.Bits() {
		return fmt.Errorf("egress: pod CIDR %s is not an IPv4 range inside the cluster CIDR %s", pod, m.cluster)
	}
	table := &knftables.Table{Comment: knftables.PtrTo("skiff: masquerade pod traffic leaving the cluster")}
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := m.cfg.NFT.NewTransaction()
	// Add-then-delete empties the table whether or not it existed (nft
	// before 1.0.7 has no "destroy"), then it is made anew.
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(table)
	tx.Add(&knftables.Chain{
		Name:     chain,
		Type:     knftables.PtrTo(knftables.NATType),
		Hook:     knftables.PtrTo(knftables.PostroutingHook),
		Priority: knftables.PtrTo(knftables.SNATPriority),
	})
	tx.Add(&knftables.Rule{Chain: chain, Rule: m.rule(pod), Comment: knftables.PtrTo("pod traffic leaving the cluster")})
	if err := m.cfg.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("egress: write table %s: %w", TableName(m.cfg.Bridge), err)
	}
	if m.applied != pod.String() {
		m.applied = pod.String()
		m.cfg.Log.Info("masquerading pod traffic leaving the cluster", "podCIDR", pod, "clusterCIDR", m.cluster, "table", TableName(m.cfg.Bridge))
	}
	return nil
}

// Run keeps the table in step with the Node's spec.podCIDR until ctx
// ends (until the Node has one, there is nothing to masquerade); call it
// once. It returns an error only when it cannot start; failed writes are
// logged and retried. The table stays when Run returns: Teardown removes
// it.
func (m *Masquerade) Run(ctx context.Context) error {
	if m.queue == nil {
		return errors.New("egress: Run needs the Node informer (New with a factory)")
	}
	defer m.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), m.synced) {
		return nil // stopped before the cache filled
	}
	m.queue.Add(m.cfg.NodeName)
	go workers.Resync(ctx, m.queue, m.cfg.NodeName, m.cfg.Resync, m.cfg.Clock)
	workers.Run(ctx, m.queue, 1, m.sync, m.cfg.Log.With("table", TableName(m.cfg.Bridge)))
	return nil
}

// sync writes the table for the Node's current pod range.
func (m *Masquerade) sync(ctx context.Context, name string) error {
	n, err := m.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.Spec.PodCIDR == "" {
		return nil
	}
	return m.Sync(ctx, n.Spec.PodCIDR)
}

// Teardown deletes the egress table of the node whose pod bridge is
// bridge, in the network namespace of the calling thread. A table that
// does not exist, or a host without nft (where none could have been
// made), is not an error.
func Teardown(ctx context.Context, bridge string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	nft, err := knftables.New(knftables.IPv4Family, TableName(bridge))
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	return teardown(ctx, nft, bridge)
}

func teardown(ctx context.Context, nft knftables.Interface, bridge string) error {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("egress: delete table %s: %w", TableName(bridge), err)
	}
	return nil
}
