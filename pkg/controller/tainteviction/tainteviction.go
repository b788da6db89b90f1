// Package tainteviction deletes the pods of nodes with NoExecute taints
// they do not tolerate, as upstream's taint eviction controller: at once
// when a taint is not tolerated at all, else when the shortest
// tolerationSeconds of the tolerations that match has passed since the
// taint was added (never when one of them has no limit). Deleted pods get
// the DisruptionTarget condition first, so Jobs and users can tell why.
package tainteviction

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/disruptiontarget"
	"github.com/skiff/skiff/pkg/controller/podsbynode"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// Controller is the taint eviction controller.
type Controller struct {
	client kubernetes.Interface
	nodes  corelisters.NodeLister
	pods   corelisters.PodLister
	byNode cache.Indexer
	clock  clock.WithTicker
	rec    record.EventRecorder
	log    *slog.Logger
	queue  workqueue.TypedRateLimitingInterface[string]

	mu sync.Mutex
	// firstSeen is when a pod was first seen under a taint that has no
	// TimeAdded (one set by hand), which then counts from there.
	firstSeen map[string]time.Time
}

// New returns the controller over f's pod and node informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, rec record.EventRecorder, log *slog.Logger) (*Controller, error) {
	podInf := f.Core().V1().Pods().Informer()
	if err := podsbynode.Add(podInf); err != nil {
		return nil, err
	}
	c := &Controller{
		client: client, nodes: f.Core().V1().Nodes().Lister(), pods: f.Core().V1().Pods().Lister(), byNode: podInf.GetIndexer(),
		clock: clk, rec: rec, log: log, firstSeen: map[string]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "tainteviction", Clock: clk}),
	}
	enqueuePod := func(p *corev1.Pod) {
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			return
		}
		if n, err := c.nodes.Get(p.Spec.NodeName); err == nil && len(noExecute(n)) > 0 {
			c.queue.Add(p.Namespace + "/" + p.Name)
		}
	}
	if _, err := podInf.AddEventHandler(typedhandler.Funcs(enqueuePod, func(_, p *corev1.Pod) { enqueuePod(p) },
		func(p *corev1.Pod) { c.forget(p.Namespace + "/" + p.Name) })); err != nil {
		return nil, err
	}
	enqueueNode := func(n *corev1.Node) {
		if len(noExecute(n)) == 0 {
			return
		}
		for _, p := range podsbynode.Pods(c.byNode, n.Name) {
			c.queue.Add(p.Namespace + "/" + p.Name)
		}
	}
	_, err := f.Core().V1().Nodes().Informer().AddEventHandler(typedhandler.Funcs(enqueueNode, func(_, n *corev1.Node) { enqueueNode(n) }, nil))
	return c, err
}

// Run runs n workers until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	delete(c.firstSeen, key)
	c.mu.Unlock()
}

func noExecute(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

// deadline is when the pod must go under taints: ok false if never
// (tolerated without limit, or no taint); the zero time if at once.
func (c *Controller) deadline(key string, p *corev1.Pod, taints []corev1.Taint) (time.Time, bool) {
	if len(taints) == 0 {
		c.forget(key)
		return time.Time{}, false
	}
	limit := time.Duration(-1)
	var start time.Time
	for _, t := range taints {
		tolerated := false
		for _, tol := range p.Spec.Tolerations {
			if !tol.ToleratesTaint(klog.Background(), &t, false) {
				continue
			}
			tolerated = true
			if tol.TolerationSeconds == nil {
				continue
			}
			d := time.Duration(max(*tol.TolerationSeconds, 0)) * time.Second
			if limit < 0 || d < limit {
				limit = d
			}
		}
		if !tolerated {
			return time.Time{}, true
		}
		added := c.added(key, t)
		if start.IsZero() || added.Before(start) {
			start = added
		}
	}
	if limit < 0 {
		return time.Time{}, false
	}
	return start.Add(limit), true
}

// added is when taint t came: its TimeAdded, else when first seen.
func (c *Controller) added(key string, t corev1.Taint) time.Time {
	if t.TimeAdded != nil {
		return t.TimeAdded.Time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.firstSeen[key]; !ok {
		c.firstSeen[key] = c.clock.Now()
	}
	return c.firstSeen[key]
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	p, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
		return nil
	}
	n, err := c.nodes.Get(p.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		return nil // the pod GC controller's
	}
	if err != nil {
		return err
	}
	at, ok := c.deadline(key, p, noExecute(n))
	if !ok {
		return nil
	}
	if wait := at.Sub(c.clock.Now()); wait > 0 {
		c.queue.AddAfter(key, wait)
		return nil
	}
	return c.evict(ctx, p)
}

// evict marks the pod a disruption target and deletes it.
func (c *Controller) evict(ctx context.Context, p *corev1.Pod) error {
	c.rec.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", p.Namespace, p.Name)
	if err := disruptiontarget.Delete(ctx, c.client, p, "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint",
		false, metav1.NewTime(c.clock.Now()), metav1.DeleteOptions{}); err != nil {
		return err
	}
	c.log.Info("evicted pod from tainted node", "pod", p.Namespace+"/"+p.Name, "node", p.Spec.NodeName)
	return nil
}
