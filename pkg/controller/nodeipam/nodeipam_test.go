package nodeipam

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func TestAllocator(t *testing.T) {
	_, cluster, _ := net.ParseCIDR("10.42.0.0/22")
	a, err := newAllocator(cluster, 24)
	if err != nil {
		t.Fatal(err)
	}
	if !a.occupy("10.42.1.0/24") || a.occupy("10.43.0.0/24") || a.occupy("10.42.2.0/25") {
		t.Fatal("occupy accepted or refused the wrong ranges")
	}
	var got []string
	for range 3 {
		c, err := a.allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	want := []string{"10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocated %v, want %v", got, want)
		}
	}
	if _, err := a.allocate(); !errors.Is(err, ErrFull) {
		t.Fatalf("a full cluster CIDR allocated: %v", err)
	}
	a.release("10.42.2.0/24")
	if c, _ := a.allocate(); c != "10.42.2.0/24" {
		t.Fatalf("after release got %q", c)
	}
	_, v6, _ := net.ParseCIDR("fd00:42::/56")
	a6, err := newAllocator(v6, 64)
	if err != nil {
		t.Fatal(err)
	}
	a6.allocate()
	if c, _ := a6.allocate(); c != "fd00:42:0:1::/64" {
		t.Fatalf("IPv6 second range %q", c)
	}
}

func TestNodesGetDistinctRangesAcrossRestarts(t *testing.T) {
	held := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "held", UID: "h"}, Spec: corev1.NodeSpec{PodCIDR: "10.42.0.0/24", PodCIDRs: []string{"10.42.0.0/24"}}}
	fresh := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "fresh", UID: "f"}}
	client := fake.NewClientset(held, fresh)
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, f, "10.42.0.0/16", DefaultMaskSize, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = record.NewFakeRecorder(10)
	for _, n := range []*corev1.Node{held, fresh} {
		_ = f.Core().V1().Nodes().Informer().GetIndexer().Add(n)
	}
	// What Run does before its workers start.
	c.occupyExisting()
	ctx := context.Background()
	if err := c.sync(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx, "fresh"); err != nil { // stale cache: no second range
		t.Fatal(err)
	}
	got, _ := client.CoreV1().Nodes().Get(ctx, "fresh", metav1.GetOptions{})
	if got.Spec.PodCIDR != "10.42.1.0/24" || len(got.Spec.PodCIDRs) != 1 {
		t.Fatalf("fresh node got %q %v", got.Spec.PodCIDR, got.Spec.PodCIDRs)
	}
	if next, _ := c.alloc.allocate(); next != "10.42.2.0/24" {
		t.Fatalf("next range %q: the stale sync took one", next)
	}
}
