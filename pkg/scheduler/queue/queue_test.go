package queue

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func pod(name string, priority int32) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)}, Spec: corev1.PodSpec{Priority: &priority}}
}

func pop(t *testing.T, q *Queue) (*QueuedPod, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	qp, cycle := q.Pop(ctx)
	if qp == nil {
		t.Fatal("nothing to pop")
	}
	return qp, cycle
}

func TestPopsByPriorityThenAge(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := New(clk)
	q.Add(pod("low", 0))
	clk.Step(time.Second)
	q.Add(pod("high", 10))
	q.Add(pod("low2", 0))
	for _, want := range []string{"high", "low", "low2"} {
		if qp, _ := pop(t, q); qp.Pod.Name != want {
			t.Fatalf("popped %s, want %s", qp.Pod.Name, want)
		}
	}
}

func TestUnschedulableWaitsForAMoveThenBacksOff(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := New(clk)
	q.Add(pod("p", 0))
	qp, cycle := pop(t, q)
	q.Unschedulable(qp, cycle)
	clk.Step(time.Hour / 60) // a minute: no move, no flush yet
	q.Flush()
	if a, b, u := q.Len(); a != 0 || b != 0 || u != 1 {
		t.Fatalf("queue %d/%d/%d, want the pod parked", a, b, u)
	}
	// A move after the 1s back-off: straight to active.
	q.MoveAll()
	if a, _, _ := q.Len(); a != 1 {
		t.Fatal("move did not make the pod active")
	}
	qp, cycle = pop(t, q)
	if qp.Attempts != 2 {
		t.Fatalf("attempts %d", qp.Attempts)
	}
	q.Unschedulable(qp, cycle)
	// A move within the back-off (2s after two attempts): it waits.
	clk.Step(500 * time.Millisecond)
	q.MoveAll()
	if a, b, _ := q.Len(); a != 0 || b != 1 {
		t.Fatalf("queue %d/%d, want backing off", a, b)
	}
	clk.Step(time.Second)
	q.Flush()
	if a, _, _ := q.Len(); a != 0 {
		t.Fatal("left back-off early")
	}
	clk.Step(600 * time.Millisecond)
	q.Flush()
	if a, _, _ := q.Len(); a != 1 {
		t.Fatal("back-off did not end")
	}
}

func TestFailureDuringAMoveIsRetried(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := New(clk)
	q.Add(pod("p", 0))
	qp, cycle := pop(t, q)
	q.MoveAll() // the cluster changed while p was being scheduled
	q.Unschedulable(qp, cycle)
	if _, b, u := q.Len(); b != 1 || u != 0 {
		t.Fatalf("backoff %d unschedulable %d: want a retry", b, u)
	}
}

func TestMoveRejectedByOnlyMovesConcernedPods(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := New(clk)
	q.Add(pod("affinity", 0))
	q.Add(pod("resources", 0))
	for range 2 {
		qp, cycle := pop(t, q)
		qp.RejectedBy = map[string]bool{"NodeResourcesFit": true}
		if qp.Pod.Name == "affinity" {
			qp.RejectedBy = map[string]bool{"InterPodAffinity": true}
		}
		q.Unschedulable(qp, cycle)
	}
	clk.Step(time.Minute)
	q.MoveRejectedBy("InterPodAffinity")
	if qp, _ := pop(t, q); qp.Pod.Name != "affinity" {
		t.Fatalf("moved %s", qp.Pod.Name)
	}
	if _, _, u := q.Len(); u != 1 {
		t.Fatal("the resources pod moved too")
	}
	// Five minutes unschedulable: flushed anyway.
	clk.Step(MaxUnschedulableDuration)
	q.Flush()
	if a, _, _ := q.Len(); a != 1 {
		t.Fatal("not flushed after five minutes")
	}
}

func TestDeletedPodsLeave(t *testing.T) {
	q := New(clocktesting.NewFakeClock(time.Unix(0, 0)))
	q.Add(pod("p", 0))
	q.Delete("p")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if qp, _ := q.Pop(ctx); qp != nil {
		t.Fatal("popped a deleted pod")
	}
}

func TestBackoffDuration(t *testing.T) {
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 5: MaxBackoff, 20: MaxBackoff} {
		if got := BackoffDuration(attempts); got != want {
			t.Errorf("attempts %d: %v, want %v", attempts, got, want)
		}
	}
}
