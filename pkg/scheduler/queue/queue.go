// Package queue is the scheduler's queue of pods waiting for a node. Pods
// are popped by priority, then age. A pod that did not fit waits in the
// unschedulable set until a cluster event that could make it fit (a node
// added or changed, a pod deleted) moves it back, after a per-pod back-off
// (1s doubling to 10s, as upstream); nothing polls, except a flush of pods
// left unschedulable for five minutes.
package queue

import (
	"container/heap"
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/utils/clock"
)

// Back-off and flush intervals, upstream's defaults.
const (
	InitialBackoff           = time.Second
	MaxBackoff               = 10 * time.Second
	MaxUnschedulableDuration = 5 * time.Minute
)

// QueuedPod is a pod in the queue.
type QueuedPod struct {
	Pod *corev1.Pod
	// Attempts counts scheduling attempts so far.
	Attempts int
	// Timestamp is when the pod last entered the queue; InitialTimestamp
	// when it first did.
	Timestamp, InitialTimestamp time.Time
	// RejectedBy names the plugins that rejected it in its last attempt
	// (so only events that concern them move it).
	RejectedBy map[string]bool
	// lastFailure is when its last attempt failed.
	lastFailure time.Time
	where       int
	index       int
}

const (
	nowhere = iota
	inActive
	inBackoff
	inUnschedulable
	inFlight
)

// Queue is safe for concurrent use.
type Queue struct {
	clock           clock.WithTicker
	mu              sync.Mutex
	cond            *sync.Cond
	pods            map[types.UID]*QueuedPod
	active, backoff podHeap
	unschedulable   map[types.UID]*QueuedPod
	// cycle counts pops; moveCycle is the cycle of the last move request,
	// so a pod that fails in a cycle during which the cluster changed is
	// retried (after back-off) instead of parked.
	cycle, moveCycle int64
	closed           bool
}

// New returns an empty queue.
func New(clk clock.WithTicker) *Queue {
	q := &Queue{clock: clk, pods: map[types.UID]*QueuedPod{}, unschedulable: map[types.UID]*QueuedPod{}}
	q.cond = sync.NewCond(&q.mu)
	q.active.less = func(a, b *QueuedPod) bool {
		pa, pb := corev1helpers.PodPriority(a.Pod), corev1helpers.PodPriority(b.Pod)
		if pa != pb {
			return pa > pb
		}
		return a.Timestamp.Before(b.Timestamp)
	}
	q.backoff.less = func(a, b *QueuedPod) bool { return q.backoffExpiry(a).Before(q.backoffExpiry(b)) }
	return q
}

// Add queues a new pending pod (an update of a queued one updates it).
func (q *Queue) Add(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp, ok := q.pods[pod.UID]; ok {
		q.updateLocked(qp, pod)
		return
	}
	now := q.clock.Now()
	qp := &QueuedPod{Pod: pod, Timestamp: now, InitialTimestamp: now}
	q.pods[pod.UID] = qp
	q.pushActive(qp)
}

// Update replaces a queued pod's object; a changed spec, labels or
// annotations of an unschedulable pod make it worth another try.
func (q *Queue) Update(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp, ok := q.pods[pod.UID]
	if !ok {
		now := q.clock.Now()
		qp = &QueuedPod{Pod: pod, Timestamp: now, InitialTimestamp: now}
		q.pods[pod.UID] = qp
		q.pushActive(qp)
		return
	}
	q.updateLocked(qp, pod)
}

func (q *Queue) updateLocked(qp *QueuedPod, pod *corev1.Pod) {
	old := qp.Pod
	qp.Pod = pod
	switch qp.where {
	case inActive:
		heap.Fix(&q.active, qp.index)
	case inUnschedulable:
		if old.Generation != pod.Generation || !labelsEqual(old.Labels, pod.Labels) {
			q.requeueLocked(qp)
		}
	}
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// Delete drops a pod (deleted, or bound by someone else).
func (q *Queue) Delete(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp, ok := q.pods[uid]
	if !ok {
		return
	}
	q.removeLocked(qp)
	delete(q.pods, uid)
}

func (q *Queue) removeLocked(qp *QueuedPod) {
	switch qp.where {
	case inActive:
		heap.Remove(&q.active, qp.index)
	case inBackoff:
		heap.Remove(&q.backoff, qp.index)
	case inUnschedulable:
		delete(q.unschedulable, qp.Pod.UID)
	}
	qp.where = nowhere
}

// Pop returns the next pod to schedule, blocking until there is one or ctx
// ends (nil then). It returns the scheduling cycle the attempt belongs to.
func (q *Queue) Pop(ctx context.Context) (*QueuedPod, int64) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		q.cond.Broadcast()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 {
		if q.closed || ctx.Err() != nil {
			return nil, 0
		}
		q.cond.Wait()
	}
	qp := heap.Pop(&q.active).(*QueuedPod)
	qp.where = inFlight
	qp.Attempts++
	q.cycle++
	return qp, q.cycle
}

// Done removes a pod that was scheduled.
func (q *Queue) Done(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp, ok := q.pods[uid]; ok && qp.where == inFlight {
		delete(q.pods, uid)
	}
}

// Unschedulable returns a popped pod that did not fit. If the cluster
// changed since its cycle began it backs off and is retried; otherwise it
// waits for a move.
func (q *Queue) Unschedulable(qp *QueuedPod, cycle int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cur, ok := q.pods[qp.Pod.UID]; !ok || cur != qp || qp.where != inFlight {
		return // deleted meanwhile
	}
	qp.lastFailure = q.clock.Now()
	qp.Timestamp = qp.lastFailure
	if q.moveCycle >= cycle {
		q.pushBackoff(qp)
		return
	}
	qp.where = inUnschedulable
	q.unschedulable[qp.Pod.UID] = qp
}

// Retry returns a popped pod whose attempt failed for a passing reason
// (a failed binding): it backs off and is retried.
func (q *Queue) Retry(qp *QueuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cur, ok := q.pods[qp.Pod.UID]; !ok || cur != qp || qp.where != inFlight {
		return
	}
	qp.lastFailure = q.clock.Now()
	q.pushBackoff(qp)
}

// MoveAll moves every unschedulable pod back to be retried (after its
// back-off): something changed that could make it fit.
func (q *Queue) MoveAll() { q.Move(nil) }

// Move moves the unschedulable pods for which concerned returns true (all
// when it is nil) back to be retried.
func (q *Queue) Move(concerned func(*QueuedPod) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveCycle = q.cycle
	for _, qp := range q.unschedulable {
		if concerned == nil || concerned(qp) {
			q.requeueLocked(qp)
		}
	}
}

// MoveRejectedBy moves the unschedulable pods that one of the named
// plugins rejected.
func (q *Queue) MoveRejectedBy(plugins ...string) {
	q.Move(func(qp *QueuedPod) bool {
		for _, p := range plugins {
			if qp.RejectedBy[p] {
				return true
			}
		}
		return false
	})
}

func (q *Queue) requeueLocked(qp *QueuedPod) {
	q.removeLocked(qp)
	if q.clock.Now().Before(q.backoffExpiry(qp)) {
		q.pushBackoff(qp)
	} else {
		q.pushActive(qp)
	}
}

func (q *Queue) pushActive(qp *QueuedPod) {
	qp.where = inActive
	heap.Push(&q.active, qp)
	q.cond.Signal()
}

func (q *Queue) pushBackoff(qp *QueuedPod) {
	qp.where = inBackoff
	heap.Push(&q.backoff, qp)
}

// BackoffDuration is the back-off after a number of attempts.
func BackoffDuration(attempts int) time.Duration {
	d := InitialBackoff
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= MaxBackoff {
			return MaxBackoff
		}
	}
	return d
}

func (q *Queue) backoffExpiry(qp *QueuedPod) time.Time {
	return qp.lastFailure.Add(BackoffDuration(qp.Attempts))
}

// Flush moves pods whose back-off expired to the active queue and pods
// unschedulable for too long back to be retried.
func (q *Queue) Flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	for q.backoff.Len() > 0 && !now.Before(q.backoffExpiry(q.backoff.items[0])) {
		qp := heap.Pop(&q.backoff).(*QueuedPod)
		q.pushActive(qp)
	}
	for _, qp := range q.unschedulable {
		if now.Sub(qp.lastFailure) >= MaxUnschedulableDuration {
			q.requeueLocked(qp)
		}
	}
}

// Run flushes every 100ms (back-offs end on time) until ctx ends.
func (q *Queue) Run(ctx context.Context) {
	t := q.clock.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			q.Flush()
		}
	}
}

// Len returns the numbers of pods active, backing off and unschedulable.
func (q *Queue) Len() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable)
}

type podHeap struct {
	items []*QueuedPod
	less  func(a, b *QueuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *podHeap) Push(x any) {
	qp := x.(*QueuedPod)
	qp.index = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	n := len(h.items)
	qp := h.items[n-1]
	h.items[n-1] = nil
	h.items = h.items[:n-1]
	return qp
}
