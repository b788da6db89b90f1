package servicelb

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func node(name string, readyNode bool, addrs ...corev1.NodeAddress) *corev1.Node {
	st := corev1.ConditionFalse
	if readyNode {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}, Addresses: addrs,
	}}
}

func TestIngressFromReadyNodes(t *testing.T) {
	internal := func(ip string) corev1.NodeAddress {
		return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
	}
	external := func(ip string) corev1.NodeAddress {
		return corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: ip}
	}
	nodes := []*corev1.Node{
		node("b", true, internal("10.0.0.2")),
		node("a", true, internal("10.0.0.1"), external("203.0.113.1")),
		node("down", false, internal("10.0.0.3")),
	}
	lb := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "metal"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("example.com/lb")}}
	client := fake.NewClientset(lb, other)
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		_ = f.Core().V1().Nodes().Informer().GetIndexer().Add(n)
	}
	_ = f.Core().V1().Services().Informer().GetIndexer().Add(lb)
	_ = f.Core().V1().Services().Informer().GetIndexer().Add(other)
	ctx := context.Background()
	for _, key := range []string{"default/web", "default/metal"} {
		if err := c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	ing := got.Status.LoadBalancer.Ingress
	if len(ing) != 2 || ing[0].IP != "10.0.0.2" || ing[1].IP != "203.0.113.1" {
		t.Fatalf("ingress %+v, want the Ready nodes' 10.0.0.2 and 203.0.113.1", ing)
	}
	if got, _ := client.CoreV1().Services("default").Get(ctx, "metal", metav1.GetOptions{}); len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Fatal("a Service of another load balancer class was touched")
	}
	// Turned into a ClusterIP Service: the ingress goes.
	got.Spec.Type = corev1.ServiceTypeClusterIP
	_ = f.Core().V1().Services().Informer().GetIndexer().Update(got)
	if err := c.sync(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if got, _ := client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{}); len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("ingress kept: %+v", got.Status.LoadBalancer.Ingress)
	}
}
