package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	clock  *clocktesting.FakeClock
	c      *Controller
}

func newHarness(t *testing.T, cfg Config, objs ...runtime.Object) *harness {
	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	clk := clocktesting.NewFakeClock(t0)
	c, err := New(client, f, cfg, clk, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, client: client, f: f, clock: clk, c: c}
}

// collect runs a pass over caches loaded from the fake API.
func (h *harness) collect() {
	ctx := context.Background()
	nodes, _ := h.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	pods, _ := h.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	var n, p []any
	for i := range nodes.Items {
		n = append(n, &nodes.Items[i])
	}
	for i := range pods.Items {
		p = append(p, &pods.Items[i])
	}
	if err := h.f.Core().V1().Nodes().Informer().GetIndexer().Replace(n, ""); err != nil {
		h.t.Fatal(err)
	}
	if err := h.f.Core().V1().Pods().Informer().GetIndexer().Replace(p, ""); err != nil {
		h.t.Fatal(err)
	}
	h.c.collect(ctx)
}

func (h *harness) exists(name string) bool {
	_, err := h.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	return !apierrors.IsNotFound(err)
}

func pod(name, node string, phase corev1.PodPhase, created time.Time) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + "x", CreationTimestamp: metav1.NewTime(created)},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
}

func TestOrphansGoAfterTheQuarantine(t *testing.T) {
	h := newHarness(t, DefaultConfig(),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "alive"}},
		pod("kept", "alive", corev1.PodRunning, t0), pod("orphan", "gone", corev1.PodRunning, t0))
	h.collect()
	h.clock.Step(39 * time.Second)
	h.collect()
	if !h.exists("orphan") {
		t.Fatal("orphan deleted within the quarantine")
	}
	h.clock.Step(2 * time.Second)
	h.collect()
	if h.exists("orphan") || !h.exists("kept") {
		t.Fatalf("after the quarantine: orphan exists %v, kept exists %v", h.exists("orphan"), h.exists("kept"))
	}
}

func TestOutOfServiceNodesTerminatingPodsAreForceDeleted(t *testing.T) {
	deleting := metav1.NewTime(t0)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "dead"},
		Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute}}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}}
	terminating := pod("terminating", "dead", corev1.PodRunning, t0)
	terminating.DeletionTimestamp = &deleting
	terminating.Finalizers = nil
	h := newHarness(t, DefaultConfig(), node, terminating, pod("running", "dead", corev1.PodRunning, t0))
	h.collect()
	if h.exists("terminating") {
		t.Fatal("terminating pod on an out-of-service node not force-deleted")
	}
	if !h.exists("running") {
		t.Fatal("a pod not being deleted was removed (the taint eviction's job)")
	}
}

func TestTerminatedPodsOverTheThreshold(t *testing.T) {
	var objs []runtime.Object
	objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}})
	for i := range 5 {
		objs = append(objs, pod(fmt.Sprintf("done-%d", i), "n", corev1.PodSucceeded, t0.Add(time.Duration(i)*time.Minute)))
	}
	objs = append(objs, pod("running", "n", corev1.PodRunning, t0))
	cfg := DefaultConfig()
	cfg.TerminatedThreshold = 3
	h := newHarness(t, cfg, objs...)
	h.collect()
	for i, want := range []bool{false, false, true, true, true} {
		if got := h.exists(fmt.Sprintf("done-%d", i)); got != want {
			t.Fatalf("done-%d exists %v, want %v (the oldest go)", i, got, want)
		}
	}
	if !h.exists("running") {
		t.Fatal("running pod deleted")
	}
}

func TestUnscheduledTerminatingPodsAreForceDeleted(t *testing.T) {
	deleting := metav1.NewTime(t0)
	p := pod("pending", "", corev1.PodPending, t0)
	p.DeletionTimestamp = &deleting
	h := newHarness(t, DefaultConfig(), p)
	h.collect()
	if h.exists("pending") {
		t.Fatal("unscheduled terminating pod kept")
	}
}
