package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func node(name, cpu string, labels map[string]string, mutate func(*corev1.Node)) *corev1.Node {
	l := map[string]string{corev1.LabelHostname: name}
	for k, v := range labels {
		l[k] = v
	}
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: corev1.NodeStatus{Capacity: rl, Allocatable: rl, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	if mutate != nil {
		mutate(n)
	}
	return n
}

func pendingPod(name, cpu string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{SchedulerName: DefaultSchedulerName, Containers: []corev1.Container{{Name: "c", Image: "img",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

// start runs a scheduler on a fake clientset whose pods/binding sets the
// pod's nodeName, as the API server does.
func start(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if ca.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := ca.GetObject().(*corev1.Binding)
		obj, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod).DeepCopy()
		if p.Spec.NodeName != "" {
			return true, nil, fmt.Errorf("pod %s is already assigned to node %q", p.Name, p.Spec.NodeName)
		}
		p.Spec.NodeName = b.Target.Name
		return true, b, cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), p, p.Namespace)
	})
	ctx, cancel := context.WithCancel(context.Background())
	s := New(Config{Client: cs, Rand: rand.New(rand.NewPCG(1, 2))})
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func nodeOf(t *testing.T, cs *fake.Clientset, name string) string {
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Spec.NodeName
}

func eventsFor(cs *fake.Clientset, pod string) []string {
	l, _ := cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	var out []string
	for _, e := range l.Items {
		if e.InvolvedObject.Name == pod {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

func TestFiltersAndFailureMessage(t *testing.T) {
	cs := start(t,
		node("cordoned", "8", nil, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		node("tainted", "8", nil, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
		}),
		node("small", "1", nil, nil),
		node("big", "8", nil, nil),
		pendingPod("fits", "4", nil),
		pendingPod("huge", "16", nil),
	)
	waitFor(t, "fits scheduled", func() bool { return nodeOf(t, cs, "fits") != "" })
	if n := nodeOf(t, cs, "fits"); n != "big" {
		t.Fatalf("fits on %s, want big", n)
	}
	want := "FailedScheduling: 0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 2 Insufficient cpu."
	waitFor(t, "FailedScheduling for huge", func() bool {
		for _, e := range eventsFor(cs, "huge") {
			if e == want {
				return true
			}
		}
		return false
	})
	p, _ := cs.CoreV1().Pods("default").Get(context.Background(), "huge", metav1.GetOptions{})
	if len(p.Status.Conditions) != 1 || p.Status.Conditions[0].Reason != corev1.PodReasonUnschedulable || !strings.HasPrefix(p.Status.Conditions[0].Message, "0/4 nodes") {
		t.Fatalf("conditions: %+v", p.Status.Conditions)
	}
	waitFor(t, "Scheduled event for fits", func() bool {
		ev := eventsFor(cs, "fits")
		return len(ev) == 1 && ev[0] == "Scheduled: Successfully assigned default/fits to big"
	})
}

func TestBurstDoesNotOvercommit(t *testing.T) {
	objs := []runtime.Object{node("a", "4", nil, nil), node("b", "4", nil, nil), node("c", "4", nil, nil)}
	for i := range 15 {
		objs = append(objs, pendingPod(fmt.Sprintf("p%d", i), "1", nil))
	}
	cs := start(t, objs...)
	waitFor(t, "12 pods bound", func() bool {
		n := 0
		for i := range 15 {
			if nodeOf(t, cs, fmt.Sprintf("p%d", i)) != "" {
				n++
			}
		}
		return n == 12
	})
	time.Sleep(200 * time.Millisecond)
	per := map[string]int{}
	for i := range 15 {
		per[nodeOf(t, cs, fmt.Sprintf("p%d", i))]++
	}
	if per["a"] != 4 || per["b"] != 4 || per["c"] != 4 || per[""] != 3 {
		t.Fatalf("placement %v: want 4 per node and 3 pending", per)
	}
}

func TestTopologySpreadAndTolerations(t *testing.T) {
	zone := func(z string) map[string]string { return map[string]string{corev1.LabelTopologyZone: z} }
	honor := corev1.NodeInclusionPolicyHonor
	spread := func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone,
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			NodeTaintsPolicy: &honor}}
	}
	objs := []runtime.Object{node("a1", "8", zone("a"), nil), node("a2", "8", zone("a"), nil), node("b1", "8", zone("b"), nil)}
	for i := range 4 {
		objs = append(objs, pendingPod(fmt.Sprintf("w%d", i), "100m", spread))
	}
	objs = append(objs, node("gpu", "8", zone("c"), func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	}))
	cs := start(t, objs...)
	waitFor(t, "4 web pods bound", func() bool {
		for i := range 4 {
			if nodeOf(t, cs, fmt.Sprintf("w%d", i)) == "" {
				return false
			}
		}
		return true
	})
	zones := map[string]int{}
	for i := range 4 {
		n := nodeOf(t, cs, fmt.Sprintf("w%d", i))
		zones[n[:1]]++
	}
	// Zone c's only node is tainted and nodeTaintsPolicy is Honor: the
	// pods spread over a and b, 2-2.
	if zones["a"] != 2 || zones["b"] != 2 {
		t.Fatalf("zones %v, want 2 and 2", zones)
	}
	_, err := cs.CoreV1().Pods("default").Create(context.Background(), pendingPod("tolerant", "100m", func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{corev1.LabelTopologyZone: "c"}
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tolerant on gpu", func() bool { return nodeOf(t, cs, "tolerant") == "gpu" })
}
