package disruption

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// world is a controller over a fake API server whose objects are copied
// into the informers' caches, as if they had synced.
type world struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	clock  *clocktesting.FakeClock
	c      *Controller
	events *record.FakeRecorder
}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	w := &world{t: t, client: fake.NewClientset(objs...), clock: clocktesting.NewFakeClock(start)}
	w.f = informers.NewSharedInformerFactory(w.client, 0)
	c, err := New(w.client, w.f, w.clock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w.events = record.NewFakeRecorder(100)
	c.recorder = w.events
	w.c = c
	t.Cleanup(c.queue.ShutDown)
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Pod:
			err = w.f.Core().V1().Pods().Informer().GetIndexer().Add(o)
		case *appsv1.ReplicaSet:
			err = w.f.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
		case *appsv1.Deployment:
			err = w.f.Apps().V1().Deployments().Informer().GetIndexer().Add(o)
		case *appsv1.StatefulSet:
			err = w.f.Apps().V1().StatefulSets().Informer().GetIndexer().Add(o)
		case *corev1.ReplicationController:
			err = w.f.Core().V1().ReplicationControllers().Informer().GetIndexer().Add(o)
		case *policyv1.PodDisruptionBudget:
			err = w.f.Policy().V1().PodDisruptionBudgets().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// sync runs one sync of the budget "web" and returns its stored state.
func (w *world) sync() (*policyv1.PodDisruptionBudget, error) {
	w.t.Helper()
	err := w.c.sync(context.Background(), "default/web")
	pdb, gerr := w.client.PolicyV1().PodDisruptionBudgets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if gerr != nil {
		w.t.Fatal(gerr)
	}
	// The informer sees the write.
	if err := w.f.Policy().V1().PodDisruptionBudgets().Informer().GetIndexer().Update(pdb); err != nil {
		w.t.Fatal(err)
	}
	return pdb, err
}

func budget(spec policyv1.PodDisruptionBudgetSpec) *policyv1.PodDisruptionBudget {
	if spec.Selector == nil {
		spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	}
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: 3}, Spec: spec}
}

func pod(name string, ready bool, owner *metav1.OwnerReference) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

func ownerRef(apiVersion, kind, name string) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(true)}
}

func meta(name string, owner *metav1.OwnerReference) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)}
	if owner != nil {
		m.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return m
}

type counts struct{ expected, desired, healthy, allowed int32 }

func expectStatus(t *testing.T, pdb *policyv1.PodDisruptionBudget, want counts, reason string) {
	t.Helper()
	st := pdb.Status
	if got := (counts{st.ExpectedPods, st.DesiredHealthy, st.CurrentHealthy, st.DisruptionsAllowed}); got != want {
		t.Errorf("status counts %+v, want %+v", got, want)
	}
	if st.ObservedGeneration != pdb.Generation {
		t.Errorf("observedGeneration %d, generation %d", st.ObservedGeneration, pdb.Generation)
	}
	c := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
	if c == nil || c.Reason != reason || (c.Status == metav1.ConditionTrue) != (reason == policyv1.SufficientPodsReason) {
		t.Errorf("condition %+v, want reason %s", c, reason)
	}
}

func TestMinAvailableCount(t *testing.T) {
	w := newWorld(t, budget(policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2))}),
		pod("a", true, nil), pod("b", true, nil), pod("c", true, nil), pod("d", false, nil))
	pdb, err := w.sync()
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, pdb, counts{expected: 4, desired: 2, healthy: 3, allowed: 1}, policyv1.SufficientPodsReason)
	if c := pdb.Status.Conditions[0]; !c.LastTransitionTime.Time.Equal(start) {
		t.Errorf("transition time %v, want the fake clock's %v", c.LastTransitionTime, start)
	}
	// A second sync with nothing changed writes nothing.
	before := len(w.client.Actions())
	if _, err := w.sync(); err != nil {
		t.Fatal(err)
	}
	for _, a := range w.client.Actions()[before:] {
		if a.GetVerb() == "update" {
			t.Fatalf("no-op sync wrote %v", a)
		}
	}
}

func TestNoPodsAllowsNothing(t *testing.T) {
	w := newWorld(t, budget(policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(0))}))
	pdb, err := w.sync()
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, pdb, counts{}, policyv1.InsufficientPodsReason)
	if ev := <-w.events.Events; ev != "Normal NoPods No matching pods found" {
		t.Errorf("event %q", ev)
	}
}

func TestExpectedFromControllers(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: meta("web", nil), Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(4))}}
	rs := &appsv1.ReplicaSet{ObjectMeta: meta("web-1", ownerRef("apps/v1", "Deployment", "web")), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(3))}}
	oldRS := &appsv1.ReplicaSet{ObjectMeta: meta("web-0", ownerRef("apps/v1", "Deployment", "web")), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(1))}}
	sts := &appsv1.StatefulSet{ObjectMeta: meta("db", nil), Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2))}}
	rc := &corev1.ReplicationController{ObjectMeta: meta("legacy", nil), Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To(int32(1))}}
	plain := &appsv1.ReplicaSet{ObjectMeta: meta("plain", nil), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(2))}}
	objs := []runtime.Object{dep, rs, oldRS, sts, rc, plain,
		pod("w1", true, ownerRef("apps/v1", "ReplicaSet", "web-1")), pod("w2", true, ownerRef("apps/v1", "ReplicaSet", "web-1")),
		pod("w0", true, ownerRef("apps/v1", "ReplicaSet", "web-0")),
		pod("db-0", true, ownerRef("apps/v1", "StatefulSet", "db")), pod("db-1", false, ownerRef("apps/v1", "StatefulSet", "db")),
		pod("legacy-x", true, ownerRef("v1", "ReplicationController", "legacy")),
		pod("plain-x", true, ownerRef("apps/v1", "ReplicaSet", "plain")),
	}
	// Deployment 4 (both its ReplicaSets count as the Deployment once),
	// StatefulSet 2, ReplicationController 1, bare ReplicaSet 2: 9.
	for _, tc := range []struct {
		name   string
		spec   policyv1.PodDisruptionBudgetSpec
		want   counts
		reason string
	}{
		{"maxUnavailable", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(2))},
			counts{expected: 9, desired: 7, healthy: 6, allowed: 0}, policyv1.InsufficientPodsReason},
		{"minAvailable percent rounds up", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%"))},
			counts{expected: 9, desired: 5, healthy: 6, allowed: 1}, policyv1.SufficientPodsReason},
		// 50% of 9 rounds up to 5 unavailable: 4 desired.
		{"maxUnavailable percent", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromString("50%"))},
			counts{expected: 9, desired: 4, healthy: 6, allowed: 2}, policyv1.SufficientPodsReason},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, append(objs, budget(tc.spec))...)
			pdb, err := w.sync()
			if err != nil {
				t.Fatal(err)
			}
			expectStatus(t, pdb, tc.want, tc.reason)
		})
	}
}

func TestMissingControllerFailsSafe(t *testing.T) {
	pdb := budget(policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1))})
	pdb.Status = policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 2, ObservedGeneration: 3}
	w := newWorld(t, pdb, pod("a", true, ownerRef("apps/v1", "ReplicaSet", "gone")), pod("b", true, nil))
	got, err := w.sync()
	if err == nil {
		t.Fatal("a sync that could not count the pods must be retried")
	}
	c := apimeta.FindStatusCondition(got.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if got.Status.DisruptionsAllowed != 0 || c == nil || c.Status != metav1.ConditionFalse || c.Reason != policyv1.SyncFailedReason ||
		c.Message != `found no controllers for pod "a"` {
		t.Fatalf("fail-safe status %+v", got.Status)
	}
}

func TestUnmanagedPodsWithPercentage(t *testing.T) {
	w := newWorld(t, budget(policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%"))}), pod("a", true, nil))
	pdb, err := w.sync()
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, pdb, counts{expected: 0, desired: 0, healthy: 1, allowed: 0}, policyv1.InsufficientPodsReason)
	if ev := <-w.events.Events; len(ev) < 30 || ev[:30] != "Warning UnmanagedPods Pods sel" {
		t.Errorf("event %q", ev)
	}
}

func TestDisruptedPods(t *testing.T) {
	now := metav1.NewTime(start)
	deleting := pod("deleting", true, nil)
	deleting.DeletionTimestamp = &now
	pdb := budget(policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1))})
	pdb.Status.DisruptedPods = map[string]metav1.Time{
		"fresh":    metav1.NewTime(start.Add(-time.Minute)),     // awaited: not healthy, kept
		"late":     metav1.NewTime(start.Add(-3 * time.Minute)), // not deleted in time: healthy again, dropped
		"deleting": metav1.NewTime(start.Add(-time.Minute)),     // being deleted: dropped
		"gone":     metav1.NewTime(start.Add(-time.Minute)),     // no such pod: dropped
	}
	w := newWorld(t, pdb, pod("fresh", true, nil), pod("late", true, nil), deleting, pod("other", true, nil))
	got, err := w.sync()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.DisruptedPods) != 1 || !got.Status.DisruptedPods["fresh"].Time.Equal(start.Add(-time.Minute)) {
		t.Fatalf("disruptedPods %v", got.Status.DisruptedPods)
	}
	expectStatus(t, got, counts{expected: 4, desired: 1, healthy: 2, allowed: 1}, policyv1.SufficientPodsReason)
	if ev := <-w.events.Events; ev != "Warning NotDeleted Pod was expected by PDB default/web to be deleted but it wasn't" {
		t.Errorf("event %q", ev)
	}

	// The budget is synced again when the fresh entry expires, a minute
	// on; then the pod counts as healthy again.
	if w.c.queue.Len() != 0 {
		t.Fatalf("queue %d before the recheck is due", w.c.queue.Len())
	}
	_, recheck, _ := disruptedPods([]*corev1.Pod{pod("fresh", true, nil)}, got.Status.DisruptedPods, start)
	if recheck == nil || !recheck.Equal(start.Add(time.Minute)) {
		t.Fatalf("recheck at %v, want %v", recheck, start.Add(time.Minute))
	}
	w.clock.Step(time.Minute + time.Second)
	again, err := w.sync()
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Status.DisruptedPods) != 0 || again.Status.CurrentHealthy != 3 {
		t.Fatalf("after expiry: %+v", again.Status)
	}
}

func TestEmptySelectorSelectsAll(t *testing.T) {
	pdb := budget(policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{}})
	other := pod("other", true, nil)
	other.Labels = map[string]string{"app": "db"}
	w := newWorld(t, pdb, pod("a", true, nil), other)
	got, err := w.sync()
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, got, counts{expected: 2, desired: 1, healthy: 2, allowed: 1}, policyv1.SufficientPodsReason)
}

func TestPodEventsEnqueueCoveringBudgets(t *testing.T) {
	w := newWorld(t, budget(policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1))}))
	other := pod("x", true, nil)
	other.Labels = map[string]string{"app": "db"}
	w.c.enqueueCovering(other)
	if w.c.queue.Len() != 0 {
		t.Fatal("a pod the budget does not select queued it")
	}
	w.c.enqueueCovering(pod("a", true, nil))
	if key, _ := w.c.queue.Get(); key != "default/web" {
		t.Fatalf("queued %q", key)
	}
}
