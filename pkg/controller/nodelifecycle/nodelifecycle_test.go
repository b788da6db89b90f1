package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
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
	c, err := New(client, f, cfg, clk, record.NewFakeRecorder(100), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, client: client, f: f, clock: clk, c: c}
	h.refresh()
	return h
}

// refresh loads the informers' caches from the fake API.
func (h *harness) refresh() {
	ctx := context.Background()
	nodes, _ := h.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	pods, _ := h.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	leases, _ := h.client.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{})
	var n, p, l []any
	for i := range nodes.Items {
		n = append(n, &nodes.Items[i])
	}
	for i := range pods.Items {
		p = append(p, &pods.Items[i])
	}
	for i := range leases.Items {
		l = append(l, &leases.Items[i])
	}
	must(h.t, h.f.Core().V1().Nodes().Informer().GetIndexer().Replace(n, ""))
	must(h.t, h.f.Core().V1().Pods().Informer().GetIndexer().Replace(p, ""))
	must(h.t, h.f.Coordination().V1().Leases().Informer().GetIndexer().Replace(l, ""))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pass runs a monitor pass and a taint pass over fresh caches.
func (h *harness) pass() {
	h.refresh()
	h.c.monitor(context.Background())
	h.refresh()
	h.c.taintPass(context.Background())
	h.refresh()
}

func (h *harness) node(name string) *corev1.Node {
	n, err := h.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	must(h.t, err)
	return n
}

func (h *harness) renew(name string) {
	l, err := h.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(context.Background(), name, metav1.GetOptions{})
	must(h.t, err)
	l.Spec.RenewTime = &metav1.MicroTime{Time: h.clock.Now()}
	_, err = h.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(context.Background(), l, metav1.UpdateOptions{})
	must(h.t, err)
}

func readyNode(name string) (*corev1.Node, *coordinationv1.Lease) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.NewTime(t0)}}}}
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), RenewTime: &metav1.MicroTime{Time: t0}}}
	return n, l
}

func readyPod(name, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
}

func cluster(n int) []runtime.Object {
	var objs []runtime.Object
	for i := range n {
		node, lease := readyNode(fmt.Sprintf("n%d", i))
		objs = append(objs, node, lease, readyPod(fmt.Sprintf("p%d", i), node.Name))
	}
	return objs
}

func taintOf(n *corev1.Node) string {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			return t.Key
		}
	}
	return ""
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.GracePeriod = 10 * time.Second
	return cfg
}

func TestSilentNodeGoesUnknownTaintedAndItsPodsNotReady(t *testing.T) {
	h := newHarness(t, testConfig(), cluster(3)...)
	h.pass()
	h.clock.Step(8 * time.Second)
	for _, n := range []string{"n0", "n1"} {
		h.renew(n)
	}
	h.pass()
	if got := taintOf(h.node("n2")); got != "" {
		t.Fatalf("n2 tainted %q within the grace period", got)
	}
	h.clock.Step(3 * time.Second) // 11s since n2's last renewal
	h.pass()
	n2 := h.node("n2")
	ready := condition(&n2.Status, corev1.NodeReady)
	if ready.Status != corev1.ConditionUnknown || ready.Reason != "NodeStatusUnknown" || ready.Message != "Kubelet stopped posting node status." {
		t.Fatalf("n2 Ready condition %+v", ready)
	}
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if c := condition(&n2.Status, typ); c == nil || c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusNeverUpdated" {
			t.Fatalf("n2 %s condition %+v", typ, c)
		}
	}
	if got := taintOf(n2); got != corev1.TaintNodeUnreachable {
		t.Fatalf("n2 NoExecute taint %q, want unreachable", got)
	}
	if n2.Spec.Taints[0].TimeAdded == nil || !n2.Spec.Taints[0].TimeAdded.Time.Equal(h.clock.Now()) {
		t.Fatalf("taint TimeAdded %v, want %v", n2.Spec.Taints[0].TimeAdded, h.clock.Now())
	}
	p, _ := h.client.CoreV1().Pods("default").Get(context.Background(), "p2", metav1.GetOptions{})
	if p.Status.Conditions[0].Status != corev1.ConditionFalse {
		t.Fatalf("pod on the silent node still Ready: %+v", p.Status.Conditions)
	}
	for _, n := range []string{"n0", "n1"} {
		if taintOf(h.node(n)) != "" {
			t.Fatalf("healthy %s tainted", n)
		}
	}

	// The kubelet comes back: Ready again, taint removed.
	h.renew("n2")
	n2 = h.node("n2")
	n2.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(h.clock.Now())}}
	_, err := h.client.CoreV1().Nodes().UpdateStatus(context.Background(), n2, metav1.UpdateOptions{})
	must(t, err)
	h.pass()
	if got := taintOf(h.node("n2")); got != "" {
		t.Fatalf("recovered n2 still tainted %q", got)
	}
}

func TestNotReadyNodeGetsNotReadyTaintAndSwapsToUnreachable(t *testing.T) {
	h := newHarness(t, testConfig(), cluster(3)...)
	n0 := h.node("n0")
	n0.Status.Conditions[0].Status = corev1.ConditionFalse
	_, err := h.client.CoreV1().Nodes().UpdateStatus(context.Background(), n0, metav1.UpdateOptions{})
	must(t, err)
	h.pass()
	if got := taintOf(h.node("n0")); got != corev1.TaintNodeNotReady {
		t.Fatalf("Ready=False node taint %q, want not-ready", got)
	}
	// Then it goes silent: the taint swaps at once.
	h.clock.Step(11 * time.Second)
	h.renew("n1")
	h.renew("n2")
	h.pass()
	n := h.node("n0")
	if got := taintOf(n); got != corev1.TaintNodeUnreachable || len(n.Spec.Taints) != 1 {
		t.Fatalf("taints %+v, want unreachable only", n.Spec.Taints)
	}
}

func TestTaintingKeepsToTheZoneRate(t *testing.T) {
	h := newHarness(t, testConfig(), cluster(10)...)
	h.pass()
	h.clock.Step(11 * time.Second)
	for i := 2; i < 10; i++ {
		h.renew(fmt.Sprintf("n%d", i))
	}
	h.pass()
	tainted := func() int {
		k := 0
		for i := range 10 {
			if taintOf(h.node(fmt.Sprintf("n%d", i))) != "" {
				k++
			}
		}
		return k
	}
	if got := tainted(); got != 1 {
		t.Fatalf("%d nodes tainted at once, want 1 (0.1 per second, burst 1)", got)
	}
	h.clock.Step(5 * time.Second)
	h.c.taintPass(context.Background())
	if got := tainted(); got != 1 {
		t.Fatalf("%d nodes tainted after 5s, want 1", got)
	}
	h.clock.Step(5 * time.Second)
	h.c.taintPass(context.Background())
	if got := tainted(); got != 2 {
		t.Fatalf("%d nodes tainted after 10s, want 2", got)
	}
}

func TestNoEvictionsWhenEveryNodeIsDown(t *testing.T) {
	h := newHarness(t, testConfig(), cluster(3)...)
	h.pass()
	h.clock.Step(11 * time.Second)
	h.renew("n0")
	h.renew("n1")
	h.pass()
	if taintOf(h.node("n2")) == "" {
		t.Fatal("n2 not tainted")
	}
	// Now every node is silent: the taint goes, none is added.
	h.clock.Step(11 * time.Second)
	h.pass()
	h.clock.Step(20 * time.Second)
	h.pass()
	for i := range 3 {
		n := h.node(fmt.Sprintf("n%d", i))
		if condition(&n.Status, corev1.NodeReady).Status != corev1.ConditionUnknown {
			t.Fatalf("%s not Unknown", n.Name)
		}
		if got := taintOf(n); got != "" {
			t.Fatalf("%s tainted %q while every node is down", n.Name, got)
		}
	}
	// One comes back: the others get a fresh grace period, then taints.
	h.renew("n0")
	n0 := h.node("n0")
	n0.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(h.clock.Now())}}
	_, err := h.client.CoreV1().Nodes().UpdateStatus(context.Background(), n0, metav1.UpdateOptions{})
	must(t, err)
	h.pass()
	if taintOf(h.node("n1")) != "" {
		t.Fatal("n1 tainted before its fresh grace period")
	}
	h.clock.Step(11 * time.Second)
	h.renew("n0")
	h.pass()
	if taintOf(h.node("n1")) == "" && taintOf(h.node("n2")) == "" {
		t.Fatal("no silent node tainted after the fresh grace period")
	}
}

func TestNewNodeGetsStartupGrace(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new", CreationTimestamp: metav1.NewTime(t0)}}
	other, lease := readyNode("other")
	h := newHarness(t, testConfig(), n, other, lease)
	h.clock.Step(30 * time.Second)
	h.renew("other")
	h.pass()
	if c := condition(&h.node("new").Status, corev1.NodeReady); c != nil {
		t.Fatalf("new node's Ready set within the startup grace: %+v", c)
	}
	h.clock.Step(31 * time.Second)
	h.renew("other")
	h.pass()
	c := condition(&h.node("new").Status, corev1.NodeReady)
	if c == nil || c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusNeverUpdated" || c.Message != "Kubelet never posted node status." {
		t.Fatalf("new node's Ready %+v", c)
	}
}

func TestNoScheduleTaintsFollowConditionsAndCordon(t *testing.T) {
	n, l := readyNode("n")
	n.Spec.Taints = []corev1.Taint{{Key: "user", Effect: corev1.TaintEffectNoSchedule}}
	h := newHarness(t, testConfig(), n, l)
	keys := func() []string {
		var out []string
		for _, t := range h.node("n").Spec.Taints {
			out = append(out, t.Key+":"+string(t.Effect))
		}
		return out
	}
	update := func(f func(n *corev1.Node)) {
		n := h.node("n")
		f(n)
		_, err := h.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
		must(t, err)
		h.refresh()
		must(t, h.c.syncNoSchedule(context.Background(), "n"))
	}
	update(func(n *corev1.Node) { n.Spec.Unschedulable = true })
	if got := fmt.Sprint(keys()); got != "[user:NoSchedule node.kubernetes.io/unschedulable:NoSchedule]" {
		t.Fatalf("cordoned: %s", got)
	}
	update(func(n *corev1.Node) {
		n.Spec.Unschedulable = false
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue})
		n.Status.Conditions[0].Status = corev1.ConditionFalse
	})
	if got := fmt.Sprint(keys()); got != "[user:NoSchedule node.kubernetes.io/not-ready:NoSchedule node.kubernetes.io/memory-pressure:NoSchedule]" {
		t.Fatalf("not ready, memory pressure: %s", got)
	}
	update(func(n *corev1.Node) {
		n.Status.Conditions = n.Status.Conditions[:1]
		n.Status.Conditions[0].Status = corev1.ConditionTrue
	})
	if got := fmt.Sprint(keys()); got != "[user:NoSchedule]" {
		t.Fatalf("healthy again: %s", got)
	}
}
