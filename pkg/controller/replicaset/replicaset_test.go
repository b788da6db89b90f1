package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

type world struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	clock  *clocktesting.FakeClock
	c      *Controller
	seq    atomic.Int64
}

func newWorld(t *testing.T, rs *appsv1.ReplicaSet) *world {
	w := &world{t: t, client: fake.NewClientset(rs), clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	w.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		n := w.seq.Add(1)
		p.Name, p.UID = fmt.Sprintf("%s%d", p.GenerateName, n), types.UID(fmt.Sprintf("uid-%d", n))
		p.CreationTimestamp = metav1.NewTime(w.clock.Now().Add(time.Duration(n) * time.Second))
		return false, nil, nil
	})
	w.f = informers.NewSharedInformerFactory(w.client, 0)
	c, err := NewReplicaSet(w.client, w.f, w.clock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = record.NewFakeRecorder(1000)
	w.c = c
	w.refresh()
	return w
}

// refresh copies the fake API server's objects into the caches (without
// telling the expectations, as a lagging informer would not).
func (w *world) refresh() {
	ctx := context.Background()
	pods, _ := w.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	var objs []any
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	_ = w.f.Core().V1().Pods().Informer().GetIndexer().Replace(objs, "")
	rss, _ := w.client.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	objs = nil
	for i := range rss.Items {
		objs = append(objs, &rss.Items[i])
	}
	_ = w.f.Apps().V1().ReplicaSets().Informer().GetIndexer().Replace(objs, "")
}

func (w *world) sync() {
	w.t.Helper()
	if err := w.c.sync(context.Background(), "default/web"); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) pods() []corev1.Pod {
	l, _ := w.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	return l.Items
}

func (w *world) rs() *appsv1.ReplicaSet {
	rs, _ := w.client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	return rs
}

func newRS(replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "rs-uid", Generation: 1},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "web"}}},
			},
		},
	}
}

// Until the informer shows the pods a sync created, more syncs create
// nothing: no double creation from a burst of events.
func TestExpectationsPreventDoubleCreation(t *testing.T) {
	w := newWorld(t, newRS(5))
	w.sync()
	w.sync() // the cache still shows no pods
	w.sync()
	if n := len(w.pods()); n != 5 {
		t.Fatalf("%d pods, want 5", n)
	}
	for _, p := range w.pods() {
		w.c.exp.ObservedCreate("default/web")
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != "rs-uid" {
			t.Fatalf("pod %s controller %+v", p.Name, ref)
		}
	}
	w.refresh()
	w.sync()
	if n := len(w.pods()); n != 5 {
		t.Fatalf("%d pods after the creations were observed, want 5", n)
	}
	if got := w.rs().Status; got.Replicas != 5 || got.ObservedGeneration != 1 {
		t.Fatalf("status %+v", got)
	}
}

// Availability waits minReadySeconds on the injected clock.
func TestMinReadySeconds(t *testing.T) {
	rs := newRS(1)
	rs.Spec.MinReadySeconds = 10
	w := newWorld(t, rs)
	w.sync()
	p := w.pods()[0]
	w.c.exp.ObservedCreate("default/web")
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(w.clock.Now())}}
	if _, err := w.client.CoreV1().Pods("default").UpdateStatus(context.Background(), &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.refresh()
	w.sync()
	if st := w.rs().Status; st.ReadyReplicas != 1 || st.AvailableReplicas != 0 {
		t.Fatalf("before minReadySeconds: %+v", st)
	}
	w.clock.Step(10 * time.Second)
	w.refresh()
	w.sync()
	if st := w.rs().Status; st.AvailableReplicas != 1 {
		t.Fatalf("after minReadySeconds: %+v", st)
	}
}

func TestDeletionOrder(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(name, node string, phase corev1.PodPhase, readyFor time.Duration, created time.Duration) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-created))}, Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if readyFor > 0 {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-readyFor))}}
		}
		return p
	}
	pods := []*corev1.Pod{
		mk("ready-long", "n", corev1.PodRunning, time.Hour, 2*time.Hour),
		mk("ready-short", "n", corev1.PodRunning, time.Minute, 2*time.Hour),
		mk("not-ready", "n", corev1.PodRunning, 0, 2*time.Hour),
		mk("pending", "n", corev1.PodPending, 0, 2*time.Hour),
		mk("unscheduled", "", corev1.PodPending, 0, 2*time.Hour),
	}
	var got []string
	for _, p := range deletionOrder(pods, now) {
		got = append(got, p.Name)
	}
	want := []string{"unscheduled", "pending", "not-ready", "ready-short", "ready-long"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// A pod creation the API refuses (here a quota) sets ReplicaFailure
// FailedCreate with the error, kept while creations fail; scaling to what
// exists clears it, as upstream's "surface a failure condition on a
// common issue like exceeded quota" expects.
func TestReplicaFailureCondition(t *testing.T) {
	w := newWorld(t, newRS(3))
	created := 0
	w.client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if created == 2 {
			return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "web-x", fmt.Errorf("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"))
		}
		created++
		return false, nil, nil
	})
	failed := func() *appsv1.ReplicaSetCondition {
		for _, c := range w.rs().Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return &c
			}
		}
		return nil
	}
	for range 3 {
		_ = w.c.sync(context.Background(), "default/web") // fails while the quota refuses
		for range w.pods() {
			w.c.exp.ObservedCreate("default/web")
		}
		w.refresh()
	}
	c := failed()
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != "FailedCreate" || !strings.Contains(c.Message, "exceeded quota") {
		t.Fatalf("condition %+v after refused creations", c)
	}
	if len(w.pods()) != 2 {
		t.Fatalf("%d pods, want the 2 the quota allows", len(w.pods()))
	}
	rs := w.rs()
	rs.Spec.Replicas = ptr.To(int32(2))
	if _, err := w.client.AppsV1().ReplicaSets("default").Update(context.Background(), rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.refresh()
	w.sync()
	if c := failed(); c != nil {
		t.Fatalf("condition %+v after scaling to what the quota allows", c)
	}
}
