// Package nodelifecycle watches node health as upstream's node lifecycle
// controller does: a node whose kubelet stops renewing its Lease and
// posting status for the grace period gets its conditions set Unknown
// ("Kubelet stopped posting node status."), the NoExecute taint that
// says why (node.kubernetes.io/unreachable, or not-ready for Ready=False)
// is added at a rate limited per zone, and its pods are marked not ready
// so Services stop sending them traffic at once. NoSchedule taints
// mirror the conditions (not-ready, unreachable, pressures) and
// spec.unschedulable, as upstream's TaintNodesByCondition. When most of a zone is
// down evictions slow or stop; when every node is down (the control
// plane is more likely cut off than every machine dead) no taint is
// added and those added are removed. The taint eviction controller
// deletes the pods that do not tolerate the taints.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/podsbynode"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// Config is the controller's tuning, as kube-controller-manager's flags.
type Config struct {
	// MonitorPeriod is how often node health is checked
	// (--node-monitor-period, default 5s).
	MonitorPeriod time.Duration
	// GracePeriod is how long a node may go without a heartbeat before
	// it is Unknown (--node-monitor-grace-period, default 50s).
	GracePeriod time.Duration
	// StartupGracePeriod replaces GracePeriod for a node that never
	// posted a Ready condition (--node-startup-grace-period, default 1m).
	StartupGracePeriod time.Duration
	// EvictionRate is the nodes per second tainted for eviction in a
	// healthy zone (--node-eviction-rate, default 0.1); the first goes at
	// once.
	EvictionRate float32
	// SecondaryEvictionRate replaces it in a partially disrupted zone
	// of more than LargeClusterSizeThreshold nodes (smaller ones stop):
	// --secondary-node-eviction-rate, default 0.01.
	SecondaryEvictionRate float32
	// LargeClusterSizeThreshold: --large-cluster-size-threshold, default 50.
	LargeClusterSizeThreshold int
	// UnhealthyZoneThreshold is the fraction of not-ready nodes (and
	// more than two) that makes a zone partially disrupted
	// (--unhealthy-zone-threshold, default 0.55).
	UnhealthyZoneThreshold float32
}

// DefaultConfig is upstream's defaults.
func DefaultConfig() Config {
	return Config{MonitorPeriod: 5 * time.Second, GracePeriod: 50 * time.Second, StartupGracePeriod: time.Minute,
		EvictionRate: 0.1, SecondaryEvictionRate: 0.01, LargeClusterSizeThreshold: 50, UnhealthyZoneThreshold: 0.55}
}

// Validate rejects settings the controller cannot run with.
func (c Config) Validate() error {
	switch {
	case c.MonitorPeriod <= 0:
		return fmt.Errorf("node-monitor-period %v: must be positive", c.MonitorPeriod)
	case c.GracePeriod <= 0 || c.StartupGracePeriod <= 0:
		return fmt.Errorf("node-monitor-grace-period %v and node-startup-grace-period %v: must be positive", c.GracePeriod, c.StartupGracePeriod)
	case c.EvictionRate < 0 || c.SecondaryEvictionRate < 0:
		return fmt.Errorf("node eviction rates %v, %v: must not be negative", c.EvictionRate, c.SecondaryEvictionRate)
	case c.UnhealthyZoneThreshold <= 0 || c.UnhealthyZoneThreshold > 1:
		return fmt.Errorf("unhealthy-zone-threshold %v: must be in (0, 1]", c.UnhealthyZoneThreshold)
	}
	return nil
}

// The NoExecute taints this controller owns.
var (
	unreachableTaint = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	notReadyTaint    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
)

// health is what the controller last saw of a node's heartbeats. probe
// is this controller's clock when a heartbeat last changed, so a
// kubelet's clock skew does not matter.
type health struct {
	probe          time.Time
	readyHeartbeat metav1.Time
	leaseRenew     time.Time
}

// Controller is the node lifecycle controller.
type Controller struct {
	cfg    Config
	client kubernetes.Interface
	nodes  corelisters.NodeLister
	leases coordlisters.LeaseLister
	pods   cache.Indexer
	clock  clock.WithTicker
	rec    record.EventRecorder
	log    *slog.Logger
	// noSchedule queues nodes whose condition taints may be stale.
	noSchedule workqueue.TypedRateLimitingInterface[string]

	seenMu    sync.Mutex
	leaseSeen map[string]time.Time

	mu           sync.Mutex
	health       map[string]*health
	zones        map[string]zoneState
	tainters     map[string]*tainter
	allDisrupted bool
}

// New returns the controller over f's node, lease and pod informers;
// rec records node status changes.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, cfg Config, clk clock.WithTicker, rec record.EventRecorder, log *slog.Logger) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pods := f.Core().V1().Pods().Informer()
	if err := podsbynode.Add(pods); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg: cfg, client: client, clock: clk, rec: rec, log: log,
		nodes: f.Core().V1().Nodes().Lister(), leases: f.Coordination().V1().Leases().Lister(), pods: pods.GetIndexer(),
		health: map[string]*health{}, zones: map[string]zoneState{}, tainters: map[string]*tainter{}, leaseSeen: map[string]time.Time{},
		noSchedule: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "node-noschedule-taints", Clock: clk}),
	}
	enqueue := func(n *corev1.Node) { c.noSchedule.Add(n.Name) }
	if _, err := f.Core().V1().Nodes().Informer().AddEventHandler(typedhandler.Funcs(enqueue, func(_, n *corev1.Node) { enqueue(n) }, nil)); err != nil {
		return nil, err
	}
	see := func(l *coordinationv1.Lease) {
		if l.Namespace == corev1.NamespaceNodeLease {
			c.seenMu.Lock()
			c.leaseSeen[l.Name] = c.clock.Now()
			c.seenMu.Unlock()
		}
	}
	_, err := f.Coordination().V1().Leases().Informer().AddEventHandler(typedhandler.Funcs(see, func(_, l *coordinationv1.Lease) { see(l) },
		func(l *coordinationv1.Lease) {
			if l.Namespace == corev1.NamespaceNodeLease {
				c.seenMu.Lock()
				delete(c.leaseSeen, l.Name)
				c.seenMu.Unlock()
			}
		}))
	return c, err
}

// taintPeriod is how often the zones' taint queues are served (upstream's
// nodeEvictionPeriod).
const taintPeriod = 100 * time.Millisecond

// Run checks node health every MonitorPeriod and adds queued taints as
// the zones' rates allow, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { c.monitorLoop(ctx) })
	wg.Go(func() { c.every(ctx, taintPeriod, c.taintPass) })
	wg.Go(func() { workers.Run(ctx, c.noSchedule, 2, c.syncNoSchedule, c.log) })
	wg.Wait()
}

// monitorLoop checks node health every MonitorPeriod, and also when the
// earliest grace period of a live node runs out, so a dead node is seen
// at its deadline rather than up to a period later.
func (c *Controller) monitorLoop(ctx context.Context) {
	t := c.clock.NewTicker(c.cfg.MonitorPeriod)
	defer t.Stop()
	var deadline <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-deadline:
		}
		deadline = nil
		if next := c.monitor(ctx); !next.IsZero() {
			deadline = c.clock.After(next.Sub(c.clock.Now()) + 10*time.Millisecond)
		}
	}
}

func (c *Controller) every(ctx context.Context, period time.Duration, f func(context.Context)) {
	t := c.clock.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			f(ctx)
		}
	}
}

// monitor is one pass over every node: health, taints, pods, zones. It
// returns the earliest deadline of a node still in its grace period.
func (c *Controller) monitor(ctx context.Context) (next time.Time) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		c.log.Error("list nodes", "err", err)
		return next
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	counts := map[string]*zoneCount{}
	for _, n := range nodes {
		seen[n.Name] = true
		zone := zoneKey(n)
		if counts[zone] == nil {
			counts[zone] = &zoneCount{}
		}
		if c.tainters[zone] == nil {
			c.tainters[zone] = newTainter(c.cfg.EvictionRate, c.clock)
		}
		ready, deadline, err := c.updateHealth(ctx, n)
		if !deadline.IsZero() && (next.IsZero() || deadline.Before(next)) {
			next = deadline
		}
		if err != nil {
			c.log.Warn("update node health", "node", n.Name, "err", err)
			counts[zone].notReady++
			continue
		}
		if ready == corev1.ConditionTrue {
			counts[zone].ready++
		} else {
			counts[zone].notReady++
			c.markPodsNotReady(ctx, n.Name)
		}
		if !c.allDisrupted {
			c.processTaints(ctx, n, ready, zone)
		}
	}
	for name := range c.health {
		if !seen[name] {
			delete(c.health, name)
			for _, t := range c.tainters {
				t.remove(name)
			}
		}
	}
	c.handleDisruption(ctx, nodes, counts)
	return next
}

// updateHealth records n's heartbeats and, once none came for the grace
// period, sets its conditions Unknown. It returns the Ready status and,
// while the node is within its grace period, when that ends.
func (c *Controller) updateHealth(ctx context.Context, n *corev1.Node) (corev1.ConditionStatus, time.Time, error) {
	now := c.clock.Now()
	ready := condition(&n.Status, corev1.NodeReady)
	grace := c.cfg.GracePeriod
	if ready == nil {
		grace = c.cfg.StartupGracePeriod
	}
	h := c.health[n.Name]
	if h == nil {
		h = &health{probe: now}
		if ready == nil {
			h.probe = n.CreationTimestamp.Time
		}
		c.health[n.Name] = h
	}
	if ready != nil && !ready.LastHeartbeatTime.Equal(&h.readyHeartbeat) {
		h.readyHeartbeat, h.probe = ready.LastHeartbeatTime, now
	}
	if l, err := c.leases.Leases(corev1.NamespaceNodeLease).Get(n.Name); err == nil && renewed(l).After(h.leaseRenew) {
		h.leaseRenew, h.probe = renewed(l), c.seen(n.Name, now)
	}
	status := corev1.ConditionUnknown
	if ready != nil {
		status = ready.Status
	}
	if deadline := h.probe.Add(grace); !now.After(deadline) {
		return status, deadline, nil
	}
	upd := n.DeepCopy()
	changed := false
	for _, typ := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		cond := condition(&upd.Status, typ)
		switch {
		case cond == nil:
			upd.Status.Conditions = append(upd.Status.Conditions, corev1.NodeCondition{Type: typ, Status: corev1.ConditionUnknown,
				Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.",
				LastHeartbeatTime: n.CreationTimestamp, LastTransitionTime: metav1.NewTime(now)})
		case cond.Status != corev1.ConditionUnknown:
			cond.Status, cond.Reason, cond.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
			cond.LastTransitionTime = metav1.NewTime(now)
		default:
			continue
		}
		changed = true
	}
	if !changed {
		return corev1.ConditionUnknown, time.Time{}, nil
	}
	if _, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return status, time.Time{}, fmt.Errorf("set conditions Unknown: %w", err)
	}
	if status == corev1.ConditionTrue {
		c.log.Info("node stopped posting status", "node", n.Name, "grace", grace)
		c.rec.Eventf(&corev1.ObjectReference{Kind: "Node", Name: n.Name, UID: n.UID}, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", n.Name)
	}
	return corev1.ConditionUnknown, time.Time{}, nil
}

// seen is when the lease informer last brought a renewal of node's Lease
// (so a renewal counts from its arrival, not from the next pass); now if
// it brought none yet.
func (c *Controller) seen(node string, now time.Time) time.Time {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	if t, ok := c.leaseSeen[node]; ok && t.Before(now) {
		return t
	}
	return now
}

func renewed(l *coordinationv1.Lease) time.Time {
	if l.Spec.RenewTime == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Time
}

func condition(s *corev1.NodeStatus, typ corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == typ {
			return &s.Conditions[i]
		}
	}
	return nil
}

// markPodsNotReady sets the Ready condition of the node's pods False, as
// the kubelet that would have cannot.
func (c *Controller) markPodsNotReady(ctx context.Context, node string) {
	now := metav1.NewTime(c.clock.Now())
	for _, p := range podsbynode.Pods(c.pods, node) {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		i := podReadyIndex(p)
		if i < 0 || p.Status.Conditions[i].Status == corev1.ConditionFalse {
			continue
		}
		upd := p.DeepCopy()
		upd.Status.Conditions[i].Status = corev1.ConditionFalse
		upd.Status.Conditions[i].LastTransitionTime = now
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
			c.log.Warn("mark pod not ready", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
}

func podReadyIndex(p *corev1.Pod) int {
	for i, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return i
		}
	}
	return -1
}
