package endpointslicemirroring

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/slicewriter"
)

func custom(subsets ...corev1.EndpointSubset) *corev1.Endpoints {
	return &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{
			Name: "db", Namespace: "default", UID: "ep-uid",
			Labels: map[string]string{"app": "db"},
			Annotations: map[string]string{
				"note":                                "kept",
				corev1.LastAppliedConfigAnnotation:    "{}",
				corev1.EndpointsLastChangeTriggerTime: "2026-01-01T00:00:00Z",
			},
		},
		Subsets: subsets,
	}
}

func port(n int32) []corev1.EndpointPort {
	return []corev1.EndpointPort{{Name: "p", Port: n, Protocol: corev1.ProtocolTCP}}
}

func addrs(ips ...string) []corev1.EndpointAddress {
	var out []corev1.EndpointAddress
	for _, ip := range ips {
		out = append(out, corev1.EndpointAddress{IP: ip})
	}
	return out
}

// applyPlan turns a plan's creations into existing slices, as the server
// would name them.
func applyPlan(t *testing.T, p slicewriter.Plan) []*discoveryv1.EndpointSlice {
	t.Helper()
	var out []*discoveryv1.EndpointSlice
	for i, s := range p.Create {
		s = s.DeepCopy()
		s.Name = s.GenerateName + string(rune('a'+i))
		out = append(out, s)
	}
	return out
}

func TestReconcileMirrorsAddressesPortsAndMetadata(t *testing.T) {
	ep := custom(corev1.EndpointSubset{
		Addresses:         append(addrs("10.1.2.3", "not-an-ip"), corev1.EndpointAddress{IP: "10.1.2.4", Hostname: "h", NodeName: ptr.To("n1")}),
		NotReadyAddresses: addrs("10.1.2.5"),
		Ports:             port(80),
	}, corev1.EndpointSubset{Addresses: addrs("fd00::1"), Ports: port(80)})
	p, sk := reconcile(ep, nil, maxEndpointsPerSubset)
	if sk.invalid != 1 || sk.overMax != 0 {
		t.Fatalf("skipped = %+v, want 1 invalid", sk)
	}
	if len(p.Create) != 2 || len(p.Update)+len(p.Delete) != 0 {
		t.Fatalf("plan = %d creates, %d updates, %d deletes; want 2 creates (IPv4, IPv6)", len(p.Create), len(p.Update), len(p.Delete))
	}
	v4, v6 := p.Create[0], p.Create[1]
	if v4.AddressType != discoveryv1.AddressTypeIPv4 || v6.AddressType != discoveryv1.AddressTypeIPv6 {
		t.Fatalf("address types %s, %s", v4.AddressType, v6.AddressType)
	}
	if v4.GenerateName != "db-" || v4.Labels[discoveryv1.LabelServiceName] != "db" ||
		v4.Labels[discoveryv1.LabelManagedBy] != ControllerName || v4.Labels["app"] != "db" {
		t.Errorf("name/labels = %q %v", v4.GenerateName, v4.Labels)
	}
	if len(v4.Annotations) != 1 || v4.Annotations["note"] != "kept" {
		t.Errorf("annotations = %v, want only note", v4.Annotations)
	}
	if ref := metav1.GetControllerOf(v4); ref == nil || ref.Kind != "Endpoints" || ref.UID != "ep-uid" {
		t.Errorf("controller ref = %+v", ref)
	}
	if len(v4.Ports) != 1 || *v4.Ports[0].Port != 80 || *v4.Ports[0].Name != "p" {
		t.Errorf("ports = %+v", v4.Ports)
	}
	var got []string
	for _, e := range v4.Endpoints {
		s := e.Addresses[0]
		if !*e.Conditions.Ready {
			s += " notready"
		}
		if e.Hostname != nil {
			s += " host=" + *e.Hostname + " node=" + *e.NodeName
		}
		got = append(got, s)
	}
	want := []string{"10.1.2.3", "10.1.2.4 host=h node=n1", "10.1.2.5 notready"}
	if len(got) != len(want) {
		t.Fatalf("endpoints = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("endpoints = %v, want %v", got, want)
		}
	}
}

func TestReconcileUpdatesInPlaceAndIsQuietWhenDone(t *testing.T) {
	existing := applyPlan(t, first(t, custom(corev1.EndpointSubset{Addresses: addrs("10.1.2.3"), Ports: port(80)})))
	if p, _ := reconcile(custom(corev1.EndpointSubset{Addresses: addrs("10.1.2.3"), Ports: port(80)}), existing, maxEndpointsPerSubset); len(p.Create)+len(p.Update)+len(p.Delete) != 0 {
		t.Fatalf("unchanged Endpoints planned writes: %+v", p)
	}
	p, _ := reconcile(custom(corev1.EndpointSubset{Addresses: addrs("10.2.3.4"), Ports: port(80)}), existing, maxEndpointsPerSubset)
	if len(p.Update) != 1 || len(p.Create)+len(p.Delete) != 0 {
		t.Fatalf("plan = %+v, want one update", p)
	}
	if u := p.Update[0]; u.Name != existing[0].Name || u.Endpoints[0].Addresses[0] != "10.2.3.4" {
		t.Errorf("update = %s %v", u.Name, u.Endpoints)
	}
	// New ports: a new slice replaces the old one.
	p, _ = reconcile(custom(corev1.EndpointSubset{Addresses: addrs("10.1.2.3"), Ports: port(81)}), existing, maxEndpointsPerSubset)
	if len(p.Create) != 1 || len(p.Delete) != 1 || p.Delete[0].Name != existing[0].Name {
		t.Fatalf("ports change plan = %+v", p)
	}
	// A duplicate (a create the cache missed) goes; no subsets: all go.
	dup := existing[0].DeepCopy()
	dup.Name = "db-z"
	p, _ = reconcile(custom(corev1.EndpointSubset{Addresses: addrs("10.1.2.3"), Ports: port(80)}), append(existing, dup), maxEndpointsPerSubset)
	if len(p.Delete) != 1 || p.Delete[0].Name != "db-z" || len(p.Update)+len(p.Create) != 0 {
		t.Fatalf("duplicate plan = %+v", p)
	}
	p, _ = reconcile(custom(), existing, maxEndpointsPerSubset)
	if len(p.Delete) != 1 || len(p.Create)+len(p.Update) != 0 {
		t.Fatalf("empty Endpoints plan = %+v", p)
	}
}

func TestReconcileCapsEachSubset(t *testing.T) {
	p, sk := reconcile(custom(corev1.EndpointSubset{Addresses: addrs("10.0.0.1", "10.0.0.2", "10.0.0.3"), Ports: port(80)}), nil, 2)
	if sk.overMax != 1 || len(p.Create) != 1 || len(p.Create[0].Endpoints) != 2 {
		t.Fatalf("skipped %+v, plan %+v", sk, p)
	}
}

func first(t *testing.T, ep *corev1.Endpoints) slicewriter.Plan {
	t.Helper()
	p, _ := reconcile(ep, nil, maxEndpointsPerSubset)
	return p
}

// TestSyncDecidesWhatIsMirrored drives the controller over a fake API
// server: only Endpoints of an existing selectorless Service without
// skip-mirror are mirrored, and the slices go when that stops being so.
func TestSyncDecidesWhatIsMirrored(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}}
	ep := custom(corev1.EndpointSubset{Addresses: addrs("10.1.2.3"), Ports: port(80)})
	client := fake.NewClientset(svc, ep)
	seq := 0
	client.PrependReactor("create", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.CreateAction).GetObject().(*discoveryv1.EndpointSlice)
		seq++
		s.Name = fmt.Sprintf("%s%d", s.GenerateName, seq) // as the server names it
		s.UID = types.UID(s.Name)
		return false, nil, nil
	})
	f := informers.NewSharedInformerFactory(client, 0)
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c, err := New(client, f, clk, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = record.NewFakeRecorder(10)
	ctx := context.Background()
	refresh := func() {
		t.Helper()
		l, _ := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		replace(t, f.Core().V1().Services().Informer().GetIndexer().Replace, l.Items)
		e, _ := client.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
		replace(t, f.Core().V1().Endpoints().Informer().GetIndexer().Replace, e.Items)
		s, _ := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
		replace(t, f.Discovery().V1().EndpointSlices().Informer().GetIndexer().Replace, s.Items)
	}
	slicesNow := func() int {
		t.Helper()
		refresh()
		if err := c.sync(ctx, "default/db"); err != nil {
			t.Fatal(err)
		}
		s, _ := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{})
		return len(s.Items)
	}
	if n := slicesNow(); n != 1 {
		t.Fatalf("selectorless Service: %d slices, want 1", n)
	}
	svc.Spec.Selector = map[string]string{"app": "db"}
	if _, err := client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := slicesNow(); n != 0 {
		t.Fatalf("Service with a selector: %d mirrored slices, want 0", n)
	}
	svc.Spec.Selector = nil
	if _, err := client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ep.Labels[discoveryv1.LabelSkipMirror] = "true"
	if _, err := client.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := slicesNow(); n != 0 {
		t.Fatalf("skip-mirror Endpoints: %d slices, want 0", n)
	}
}

func replace[T any](t *testing.T, replace func([]any, string) error, items []T) {
	t.Helper()
	objs := make([]any, 0, len(items))
	for i := range items {
		objs = append(objs, any(&items[i]))
	}
	if err := replace(objs, ""); err != nil {
		t.Fatal(err)
	}
}
