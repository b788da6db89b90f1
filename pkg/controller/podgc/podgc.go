// Package podgc removes pods no kubelet will ever finish, as upstream's
// pod garbage collector: pods bound to nodes that no longer exist
// (confirmed with the API after a quarantine, so a node still being
// registered is not mistaken for a gone one), terminating pods on nodes
// that are not ready and carry the node.kubernetes.io/out-of-service
// taint, terminating pods never scheduled, and the oldest terminated
// pods beyond the threshold. Orphans are set Failed with the
// DisruptionTarget condition and force-deleted.
package podgc

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/disruptiontarget"
	"github.com/skiff/skiff/pkg/controller/podsbynode"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
)

// Config tunes the collector.
type Config struct {
	// TerminatedThreshold is how many terminated pods may exist before
	// the oldest are deleted; 0 keeps them all
	// (--terminated-pod-gc-threshold, default 12500).
	TerminatedThreshold int
	// Period is how often it runs (upstream's 20s); a node's deletion or
	// out-of-service taint also starts a pass.
	Period time.Duration
	// Quarantine is how long a pod's node must be missing before the pod
	// is an orphan (upstream's 40s).
	Quarantine time.Duration
}

// DefaultConfig is upstream's defaults.
func DefaultConfig() Config {
	return Config{TerminatedThreshold: 12500, Period: 20 * time.Second, Quarantine: 40 * time.Second}
}

// Controller is the pod garbage collector.
type Controller struct {
	cfg    Config
	client kubernetes.Interface
	pods   corelisters.PodLister
	byNode cache.Indexer
	nodes  corelisters.NodeLister
	clock  clock.WithTicker
	log    *slog.Logger
	kick   chan struct{}

	mu sync.Mutex
	// missing is when each absent node was first found missing.
	missing map[string]time.Time
}

// New returns the collector over f's pod and node informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, cfg Config, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	podInf := f.Core().V1().Pods().Informer()
	if err := podsbynode.Add(podInf); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, client: client, pods: f.Core().V1().Pods().Lister(), byNode: podInf.GetIndexer(),
		nodes: f.Core().V1().Nodes().Lister(), clock: clk, log: log, kick: make(chan struct{}, 1), missing: map[string]time.Time{}}
	kick := func() {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	_, err := f.Core().V1().Nodes().Informer().AddEventHandler(typedhandler.Funcs(nil,
		func(old, cur *corev1.Node) {
			if outOfService(cur) && !outOfService(old) {
				kick()
			}
		},
		func(*corev1.Node) { kick() }))
	return c, err
}

// Run collects every Period (and when kicked) until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := c.clock.NewTicker(c.cfg.Period)
	defer t.Stop()
	var quarantineEnds <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-c.kick:
		case <-quarantineEnds:
		}
		// A node found missing is looked at again when its quarantine
		// ends, not at the next period after.
		quarantineEnds = nil
		if next := c.collect(ctx); !next.IsZero() {
			quarantineEnds = c.clock.After(next.Sub(c.clock.Now()))
		}
	}
}

// collect runs every pass; it returns when the earliest quarantine of a
// missing node ends (zero if none).
func (c *Controller) collect(ctx context.Context) time.Time {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		c.log.Error("list pods", "err", err)
		return time.Time{}
	}
	c.gcTerminated(ctx, pods)
	c.gcOutOfService(ctx)
	next := c.gcOrphaned(ctx, pods)
	c.gcUnscheduledTerminating(ctx, pods)
	return next
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func (c *Controller) forceDelete(ctx context.Context, p *corev1.Pod, why string) {
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		c.log.Warn("force-delete pod", "pod", p.Namespace+"/"+p.Name, "err", err)
		return
	}
	c.log.Info("force-deleted pod", "pod", p.Namespace+"/"+p.Name, "why", why)
}

// gcTerminated deletes the oldest terminated pods over the threshold.
func (c *Controller) gcTerminated(ctx context.Context, pods []*corev1.Pod) {
	if c.cfg.TerminatedThreshold <= 0 {
		return
	}
	var done []*corev1.Pod
	for _, p := range pods {
		if terminal(p) && p.DeletionTimestamp == nil {
			done = append(done, p)
		}
	}
	excess := len(done) - c.cfg.TerminatedThreshold
	if excess <= 0 {
		return
	}
	slices.SortFunc(done, func(a, b *corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	for _, p := range done[:excess] {
		if err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}); err != nil && !apierrors.IsNotFound(err) {
			c.log.Warn("delete terminated pod", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
	c.log.Info("deleted terminated pods over the threshold", "count", excess, "threshold", c.cfg.TerminatedThreshold)
}

func outOfService(n *corev1.Node) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeOutOfService })
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// gcOutOfService force-deletes the terminating pods of nodes declared
// out of service, whose kubelets will not confirm.
func (c *Controller) gcOutOfService(ctx context.Context) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		if !outOfService(n) || nodeReady(n) {
			continue
		}
		for _, p := range podsbynode.Pods(c.byNode, n.Name) {
			if p.DeletionTimestamp == nil {
				continue
			}
			err := disruptiontarget.Delete(ctx, c.client, p, "DeletionByPodGC", "PodGC: node is out-of-service", true,
				metav1.NewTime(c.clock.Now()), metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			if err != nil {
				c.log.Warn("force-delete pod of an out-of-service node", "pod", p.Namespace+"/"+p.Name, "err", err)
				continue
			}
			c.log.Info("force-deleted pod", "pod", p.Namespace+"/"+p.Name, "why", "terminating on an out-of-service node")
		}
	}
}

// gcOrphaned deletes the pods of nodes missing for the quarantine and
// confirmed gone by the API. It returns when the earliest quarantine
// still running ends (zero if none).
func (c *Controller) gcOrphaned(ctx context.Context, pods []*corev1.Pod) (next time.Time) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	absent := map[string]bool{}
	for _, p := range pods {
		name := p.Spec.NodeName
		if name == "" || absent[name] {
			continue
		}
		if _, err := c.nodes.Get(name); err == nil {
			continue
		}
		absent[name] = true
		if _, ok := c.missing[name]; !ok {
			c.missing[name] = now
		}
	}
	for name, since := range c.missing {
		if !absent[name] {
			delete(c.missing, name)
			continue
		}
		if ends := since.Add(c.cfg.Quarantine); now.Before(ends) {
			if next.IsZero() || ends.Before(next) {
				next = ends
			}
			continue
		}
		if _, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			continue
		}
		for _, p := range podsbynode.Pods(c.byNode, name) {
			err := disruptiontarget.Delete(ctx, c.client, p, "DeletionByPodGC", "PodGC: node no longer exists", true,
				metav1.NewTime(now), metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			if err != nil {
				c.log.Warn("delete orphaned pod", "pod", p.Namespace+"/"+p.Name, "err", err)
				continue
			}
			c.log.Info("deleted pod of a node that no longer exists", "pod", p.Namespace+"/"+p.Name, "node", name)
		}
	}
	return next
}

// gcUnscheduledTerminating force-deletes terminating pods no node holds.
func (c *Controller) gcUnscheduledTerminating(ctx context.Context, pods []*corev1.Pod) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil && p.Spec.NodeName == "" {
			c.forceDelete(ctx, p, "terminating and never scheduled")
		}
	}
}
