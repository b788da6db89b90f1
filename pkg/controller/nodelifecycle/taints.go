package nodelifecycle

import (
	"context"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
)

// processTaints brings n's NoExecute taints in line with its Ready
// status: a node that is back has both removed at once; a node already
// tainted for one reason swaps to the other at once; a newly failed node
// waits in its zone's queue, so evictions keep to the zone's rate.
func (c *Controller) processTaints(ctx context.Context, n *corev1.Node, ready corev1.ConditionStatus, zone string) {
	q := c.tainters[zone]
	want, other := notReadyTaint, unreachableTaint
	switch ready {
	case corev1.ConditionTrue:
		q.remove(n.Name)
		if hasTaint(n, unreachableTaint) || hasTaint(n, notReadyTaint) {
			c.setTaint(ctx, n.Name, nil)
		}
		return
	case corev1.ConditionUnknown:
		want, other = unreachableTaint, notReadyTaint
	}
	switch {
	case hasTaint(n, want):
	case hasTaint(n, other):
		c.setTaint(ctx, n.Name, &want)
	default:
		q.add(n.Name)
	}
}

// taintPass adds the taint of each queued node its zone's rate allows.
func (c *Controller) taintPass(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.tainters {
		q.serve(func(name string) bool {
			n, err := c.nodes.Get(name)
			if apierrors.IsNotFound(err) {
				return true
			}
			if err != nil {
				return false
			}
			var want *corev1.Taint
			switch ready := condition(&n.Status, corev1.NodeReady); {
			case ready == nil || ready.Status == corev1.ConditionUnknown:
				want = &unreachableTaint
			case ready.Status == corev1.ConditionFalse:
				want = &notReadyTaint
			}
			return c.setTaint(ctx, name, want) == nil
		})
	}
}

// setTaint leaves want (nil for neither) as the node's only one of this
// controller's NoExecute taints.
func (c *Controller) setTaint(ctx context.Context, name string, want *corev1.Taint) error {
	changed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool {
			return (t.MatchTaint(&unreachableTaint) || t.MatchTaint(&notReadyTaint)) && (want == nil || !t.MatchTaint(want))
		})
		if want != nil && !slices.ContainsFunc(taints, matches(*want)) {
			t := *want
			now := metav1.NewTime(c.clock.Now())
			t.TimeAdded = &now
			taints = append(taints, t)
		}
		if slices.EqualFunc(taints, n.Spec.Taints, func(a, b corev1.Taint) bool { return a.MatchTaint(&b) }) {
			return nil
		}
		n.Spec.Taints = taints
		_, err = c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		changed = err == nil
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		c.log.Warn("update node taints", "node", name, "err", err)
		return fmt.Errorf("taint node %s: %w", name, err)
	}
	switch {
	case !changed:
	case want != nil:
		c.log.Info("tainted node", "node", name, "taint", want.Key)
	default:
		c.log.Info("removed NoExecute taints from node", "node", name)
	}
	return nil
}

func hasTaint(n *corev1.Node, t corev1.Taint) bool {
	return slices.ContainsFunc(n.Spec.Taints, matches(t))
}

func matches(t corev1.Taint) func(corev1.Taint) bool {
	return func(o corev1.Taint) bool { return o.MatchTaint(&t) }
}

// tainter is a zone's queue of nodes to taint, served at the zone's rate
// (a token bucket with a burst of one, as upstream's). A node served
// stays marked until removed, so it is not tainted again while down.
type tainter struct {
	mu      sync.Mutex
	clock   clock.Clock
	limiter flowcontrol.RateLimiter
	queue   []string
	marked  map[string]bool
}

func newTainter(qps float32, clk clock.Clock) *tainter {
	t := &tainter{clock: clk, marked: map[string]bool{}}
	t.setRate(qps)
	return t
}

// setRate replaces the limiter; 0 stops serving.
func (t *tainter) setRate(qps float32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if qps <= 0 {
		t.limiter = flowcontrol.NewFakeNeverRateLimiter()
		return
	}
	t.limiter = flowcontrol.NewTokenBucketRateLimiterWithClock(qps, 1, t.clock)
}

func (t *tainter) add(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.marked[name] {
		t.marked[name] = true
		t.queue = append(t.queue, name)
	}
}

func (t *tainter) remove(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.marked, name)
	t.queue = slices.DeleteFunc(t.queue, func(n string) bool { return n == name })
}

// serve hands queued nodes to f, in order, while the rate allows; a node
// f fails on goes to the back of the queue.
func (t *tainter) serve(f func(name string) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.queue) > 0 && t.limiter.TryAccept() {
		name := t.queue[0]
		t.queue = t.queue[1:]
		if !f(name) {
			t.queue = append(t.queue, name)
		}
	}
}

// removeAll drops every queued node.
func (t *tainter) removeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queue, t.marked = nil, map[string]bool{}
}
