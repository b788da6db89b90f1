package deployment

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// waitQueued waits until the controller's queue hands out the
// Deployment's key (its delaying queue runs on the fake clock in a
// goroutine of its own) and takes it.
func (w *world) waitQueued() {
	w.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 2*time.Second, true, func(context.Context) (bool, error) {
		return w.c.queue.Len() > 0, nil
	})
	if err != nil {
		w.t.Fatal("the Deployment was not requeued")
	}
	key, _ := w.c.queue.Get()
	w.c.queue.Done(key)
	w.c.queue.Forget(key)
	if key != testKey {
		w.t.Fatalf("queued %q", key)
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	w := newWorld(t)
	d := newDeployment(2, "web:bad", intstr.FromString("25%"), intstr.FromString("25%"))
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](60)
	w.create(d)
	t0 := w.clock.Now()
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionTrue, reasonNewRSCreated)
	w.settle(noneAvailableFor("web:bad"))
	w.sync()
	d = w.deployment()
	wantProgressing(t, d, corev1.ConditionTrue, reasonRSUpdated)
	if c := availableOf(d); c == nil || c.Status != corev1.ConditionFalse || c.Reason != reasonMinimumUnavailable {
		t.Errorf("Available = %+v, want False/%s", c, reasonMinimumUnavailable)
	}
	if d.Status.UnavailableReplicas != 2 || d.Status.UpdatedReplicas != 2 || d.Status.AvailableReplicas != 0 {
		t.Errorf("status %+v", d.Status)
	}

	// No progress: the controller looks again at the deadline.
	w.sync()
	if w.c.queue.Len() != 0 {
		t.Fatal("requeued before the deadline")
	}
	w.clock.SetTime(t0.Add(59 * time.Second))
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionTrue, reasonRSUpdated)
	w.clock.SetTime(t0.Add(61 * time.Second))
	w.waitQueued()
	w.sync()
	d = w.deployment()
	rs := w.mustRS("web:bad")
	wantProgressing(t, d, corev1.ConditionFalse, reasonTimedOut)
	if c := progressingOf(d); !strings.Contains(c.Message, rs.Name) || !c.LastTransitionTime.Time.Equal(t0.Add(61*time.Second)) {
		t.Errorf("Progressing %+v, want a message naming %s and a transition now", c, rs.Name)
	}
	// It stays timed out.
	w.clock.Step(time.Hour)
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionFalse, reasonTimedOut)

	// Pods becoming available complete the rollout after all.
	w.settle(allAvailable)
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionTrue, reasonNewRSAvailable)
}

// A rollout that makes progress never times out, however long it takes.
func TestProgressResetsDeadline(t *testing.T) {
	w := newWorld(t)
	d := newDeployment(10, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](60)
	w.create(d)
	w.rollout(allAvailable, nil)
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	l := lag{w.mustRS("web:v1").Name: 10}
	w.rollout(l.available, func(int) {
		w.clock.Step(50 * time.Second)
		if c := progressingOf(w.deployment()); c != nil && c.Reason == reasonTimedOut {
			t.Fatalf("timed out while progressing: %+v", c)
		}
	})
}

// A resumed rollout that makes no progress still times out: the
// controller must look at it again at its deadline, as upstream does for
// any Progressing condition short of complete or timed out.
func TestProgressDeadlineAfterResume(t *testing.T) {
	w := newWorld(t)
	d := newDeployment(2, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](60)
	w.create(d)
	w.rollout(allAvailable, nil)
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:bad") })
	for range 3 {
		w.sync()
		w.settle(noneAvailableFor("web:bad"))
	}
	w.update(func(d *appsv1.Deployment) { d.Spec.Paused = true })
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionUnknown, reasonPaused)
	w.clock.Step(time.Hour)
	w.resetQueue()
	w.update(func(d *appsv1.Deployment) { d.Spec.Paused = false })
	resumed := w.clock.Now()
	w.sync()
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionUnknown, reasonResumed)
	if w.c.queue.Len() != 0 {
		t.Fatal("requeued before the deadline")
	}
	w.clock.SetTime(resumed.Add(61 * time.Second))
	w.waitQueued()
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionFalse, reasonTimedOut)
}

// Without progressDeadlineSeconds there is no Progressing condition.
func TestNoProgressDeadline(t *testing.T) {
	w := newWorld(t)
	d := newDeployment(2, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.ProgressDeadlineSeconds = nil
	w.create(d)
	for range 3 {
		w.sync()
		w.settle(allAvailable)
	}
	d = w.deployment()
	if c := progressingOf(d); c != nil {
		t.Errorf("Progressing %+v without a deadline", c)
	}
	if c := availableOf(d); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("Available %+v", c)
	}
}
