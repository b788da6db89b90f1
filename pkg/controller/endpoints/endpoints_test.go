package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
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

// world is a fake API server with the controller's caches refreshed from
// it around every sync, so each sync sees the latest state.
type world struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	c      *Controller
}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	t.Helper()
	w := &world{t: t, client: fake.NewClientset(objs...)}
	w.f = informers.NewSharedInformerFactory(w.client, 0)
	c, err := New(w.client, w.f, clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = record.NewFakeRecorder(100)
	w.c = c
	return w
}

// refresh copies the fake API server's objects into the caches.
func (w *world) refresh() {
	w.t.Helper()
	ctx := context.Background()
	var objs []any
	pods, err := w.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	w.replace(w.f.Core().V1().Pods().Informer().GetIndexer().Replace, objs)
	objs = nil
	svcs, err := w.client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range svcs.Items {
		objs = append(objs, &svcs.Items[i])
	}
	w.replace(w.f.Core().V1().Services().Informer().GetIndexer().Replace, objs)
	objs = nil
	eps, err := w.client.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range eps.Items {
		objs = append(objs, &eps.Items[i])
	}
	w.replace(w.f.Core().V1().Endpoints().Informer().GetIndexer().Replace, objs)
}

func (w *world) replace(replace func([]any, string) error, objs []any) {
	if err := replace(objs, ""); err != nil {
		w.t.Fatal(err)
	}
}

// sync runs one sync of the Service and returns the writes it made to
// Endpoints ("create default/web", ...).
func (w *world) sync(name string) []string {
	w.t.Helper()
	w.refresh()
	before := len(w.client.Actions())
	if err := w.c.sync(context.Background(), "default/"+name); err != nil {
		w.t.Fatal(err)
	}
	var writes []string
	for _, a := range w.client.Actions()[before:] {
		if a.GetResource().Resource == "endpoints" && a.GetVerb() != "get" && a.GetVerb() != "list" {
			writes = append(writes, a.GetVerb()+" "+a.GetNamespace())
		}
	}
	w.refresh()
	return writes
}

func (w *world) endpoints(name string) *corev1.Endpoints {
	w.t.Helper()
	ep, err := w.client.CoreV1().Endpoints("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return ep
}

func (w *world) create(obj runtime.Object) {
	w.t.Helper()
	var err error
	switch o := obj.(type) {
	case *corev1.Pod:
		_, err = w.client.CoreV1().Pods(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = w.client.CoreV1().Services(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
	case *corev1.Endpoints:
		_, err = w.client.CoreV1().Endpoints(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) updatePod(p *corev1.Pod) {
	w.t.Helper()
	if _, err := w.client.CoreV1().Pods(p.Namespace).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func service(name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("svc-" + name), Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{
			Selector: selector, Ports: ports, ClusterIP: "10.43.0.10", IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
}

func port(name string, p int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: p, TargetPort: target, Protocol: corev1.ProtocolTCP}
}

// pod returns a running pod labelled app=web on node-1; ip "" leaves it
// without an address.
func pod(name, ip string, ready bool, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "web",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
	if ip != "" {
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func addr(name, ip string) corev1.EndpointAddress {
	return corev1.EndpointAddress{IP: ip, NodeName: ptr.To("node-1"),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: name, UID: types.UID("uid-" + name)}}
}

func epPort(name string, p int32) corev1.EndpointPort {
	return corev1.EndpointPort{Name: name, Port: p, Protocol: corev1.ProtocolTCP}
}

var webSelector = map[string]string{"app": "web"}

func TestReadyAndNotReadyAddresses(t *testing.T) {
	terminating := func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.Now()) }
	succeeded := func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }
	otherApp := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "db"} }
	w := newWorld(t,
		service("web", webSelector, port("http", 80, intstr.FromInt32(8080))),
		pod("b", "10.42.0.2", true), pod("a", "10.42.0.1", true), pod("c", "10.42.0.3", false),
		pod("no-ip", "", true), pod("done", "10.42.0.4", true, succeeded), pod("going", "10.42.0.5", true, terminating),
		pod("db", "10.42.0.6", true, otherApp))
	if got := w.sync("web"); !cmp.Equal(got, []string{"create default"}) {
		t.Fatalf("writes %v", got)
	}
	ep := w.endpoints("web")
	want := []corev1.EndpointSubset{{
		Addresses:         []corev1.EndpointAddress{addr("a", "10.42.0.1"), addr("b", "10.42.0.2")},
		NotReadyAddresses: []corev1.EndpointAddress{addr("c", "10.42.0.3")},
		Ports:             []corev1.EndpointPort{epPort("http", 8080)},
	}}
	if diff := cmp.Diff(want, ep.Subsets); diff != "" {
		t.Fatalf("subsets (-want +got):\n%s", diff)
	}
	wantLabels := map[string]string{"team": "a", LabelManagedBy: ControllerName}
	if !cmp.Equal(ep.Labels, wantLabels) {
		t.Fatalf("labels %v, want %v", ep.Labels, wantLabels)
	}
	if _, ok := ep.Annotations[corev1.EndpointsOverCapacity]; ok {
		t.Fatal("over-capacity annotation on a small Endpoints")
	}

	// The pod becomes ready: it moves.
	c := pod("c", "10.42.0.3", true)
	w.updatePod(c)
	w.sync("web")
	ep = w.endpoints("web")
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 3 || len(ep.Subsets[0].NotReadyAddresses) != 0 {
		t.Fatalf("after the pod became ready: %+v", ep.Subsets)
	}
}

func TestPublishNotReadyAddresses(t *testing.T) {
	svc := service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))
	svc.Spec.PublishNotReadyAddresses = true
	w := newWorld(t, svc, pod("a", "10.42.0.1", false),
		pod("b", "10.42.0.2", true, func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.Now()) }))
	w.sync("web")
	want := []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{addr("a", "10.42.0.1"), addr("b", "10.42.0.2")},
		Ports:     []corev1.EndpointPort{epPort("http", 8080)},
	}}
	if diff := cmp.Diff(want, w.endpoints("web").Subsets); diff != "" {
		t.Fatalf("subsets (-want +got):\n%s", diff)
	}
}

func TestNamedTargetPortResolvedPerPod(t *testing.T) {
	onPort := func(n int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = n }
	}
	noHTTP := func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }
	udp := func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolUDP }
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromString("http"))),
		pod("a", "10.42.0.1", true, onPort(8080)), pod("b", "10.42.0.2", true, onPort(9090)),
		pod("c", "10.42.0.3", true, onPort(8080)), pod("no-port", "10.42.0.4", true, noHTTP),
		pod("udp", "10.42.0.5", true, udp))
	w.sync("web")
	want := []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{addr("a", "10.42.0.1"), addr("c", "10.42.0.3")}, Ports: []corev1.EndpointPort{epPort("http", 8080)}},
		{Addresses: []corev1.EndpointAddress{addr("b", "10.42.0.2")}, Ports: []corev1.EndpointPort{epPort("http", 9090)}},
	}
	if diff := cmp.Diff(want, w.endpoints("web").Subsets); diff != "" {
		t.Fatalf("subsets (-want +got):\n%s", diff)
	}
}

func TestMultiPortSubsetsRepacked(t *testing.T) {
	noHTTP := func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }
	svc := service("web", webSelector,
		port("metrics", 9100, intstr.FromInt32(9100)),
		port("http", 80, intstr.FromString("http")),
		port("https", 443, intstr.FromInt32(8443)))
	svc.Spec.Ports[1].AppProtocol = ptr.To("http")
	w := newWorld(t, svc, pod("a", "10.42.0.1", true), pod("b", "10.42.0.2", false), pod("c", "10.42.0.3", true, noHTTP))
	w.sync("web")
	httpPort := epPort("http", 8080)
	httpPort.AppProtocol = ptr.To("http")
	want := []corev1.EndpointSubset{
		// http: the pods with the named port.
		{
			Addresses:         []corev1.EndpointAddress{addr("a", "10.42.0.1")},
			NotReadyAddresses: []corev1.EndpointAddress{addr("b", "10.42.0.2")},
			Ports:             []corev1.EndpointPort{httpPort},
		},
		// https and metrics: every pod, so one subset.
		{
			Addresses:         []corev1.EndpointAddress{addr("a", "10.42.0.1"), addr("c", "10.42.0.3")},
			NotReadyAddresses: []corev1.EndpointAddress{addr("b", "10.42.0.2")},
			Ports:             []corev1.EndpointPort{epPort("https", 8443), epPort("metrics", 9100)},
		},
	}
	if diff := cmp.Diff(want, w.endpoints("web").Subsets); diff != "" {
		t.Fatalf("subsets (-want +got):\n%s", diff)
	}
}

func TestHeadlessServiceHostnames(t *testing.T) {
	svc := service("db", webSelector)
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	inSubdomain := func(sub string) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = p.Name+"-host", sub }
	}
	w := newWorld(t, svc, pod("a", "10.42.0.1", true, inSubdomain("db")), pod("b", "10.42.0.2", true, inSubdomain("other")),
		pod("c", "10.42.0.3", true))
	w.sync("db")
	ep := w.endpoints("db")
	a := addr("a", "10.42.0.1")
	a.Hostname = "a-host"
	want := []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{a, addr("b", "10.42.0.2"), addr("c", "10.42.0.3")}}}
	if diff := cmp.Diff(want, ep.Subsets); diff != "" {
		t.Fatalf("subsets (-want +got):\n%s", diff)
	}
	if _, ok := ep.Labels[corev1.IsHeadlessService]; !ok {
		t.Fatalf("labels %v lack %s", ep.Labels, corev1.IsHeadlessService)
	}

	// A headful Service without ports lists nobody, as upstream.
	svc2 := service("noports", webSelector)
	w.create(svc2)
	w.sync("noports")
	if ss := w.endpoints("noports").Subsets; len(ss) != 0 {
		t.Fatalf("portless headful service: %+v", ss)
	}
}

func TestIPFamily(t *testing.T) {
	svc := service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))
	svc.Spec.ClusterIP, svc.Spec.IPFamilies = "fd00::10", []corev1.IPFamily{corev1.IPv6Protocol}
	dual := func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "10.42.0.1"}, {IP: "fd00:42::1"}} }
	w := newWorld(t, svc, pod("a", "10.42.0.1", true, dual), pod("v4only", "10.42.0.2", true))
	w.sync("web")
	ss := w.endpoints("web").Subsets
	if len(ss) != 1 || len(ss[0].Addresses) != 1 || ss[0].Addresses[0].IP != "fd00:42::1" {
		t.Fatalf("subsets %+v, want only a's IPv6 address", ss)
	}
}

func TestSelectorlessServiceLeftAlone(t *testing.T) {
	manual := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default"},
		Subsets:    []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}, Ports: []corev1.EndpointPort{epPort("", 5432)}}},
	}
	ext := service("ext", nil, port("", 5432, intstr.FromInt32(5432)))
	w := newWorld(t, ext, manual, pod("a", "10.42.0.1", true))
	if got := w.sync("ext"); len(got) != 0 {
		t.Fatalf("selector-less service: writes %v", got)
	}
	// Its Service goes: the hand-made Endpoints stay.
	if err := w.client.CoreV1().Services("default").Delete(context.Background(), "ext", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := w.sync("ext"); len(got) != 0 {
		t.Fatalf("deleted selector-less service: writes %v", got)
	}
	if diff := cmp.Diff(manual.Subsets, w.endpoints("ext").Subsets); diff != "" {
		t.Fatalf("hand-made endpoints changed (-want +got):\n%s", diff)
	}
}

func TestServiceDeletionDeletesEndpoints(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))), pod("a", "10.42.0.1", true))
	w.sync("web")
	w.endpoints("web")
	if err := w.client.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := w.sync("web"); !cmp.Equal(got, []string{"delete default"}) {
		t.Fatalf("writes %v", got)
	}
	if _, err := w.client.CoreV1().Endpoints("default").Get(context.Background(), "web", metav1.GetOptions{}); err == nil {
		t.Fatal("endpoints outlived their service")
	}
}

func TestUnchangedResyncWritesNothing(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromString("http"))),
		pod("a", "10.42.0.1", true), pod("b", "10.42.0.2", false))
	if got := w.sync("web"); len(got) != 1 {
		t.Fatalf("first sync: writes %v", got)
	}
	for range 3 {
		if got := w.sync("web"); len(got) != 0 {
			t.Fatalf("resync: writes %v", got)
		}
	}
	// A pod change that does not matter (an annotation) writes nothing
	// either; one that does writes once.
	a := pod("a", "10.42.0.1", true, func(p *corev1.Pod) { p.Annotations = map[string]string{"x": "y"} })
	w.updatePod(a)
	if got := w.sync("web"); len(got) != 0 {
		t.Fatalf("after an annotation change: writes %v", got)
	}
	w.updatePod(pod("b", "10.42.0.2", true))
	if got := w.sync("web"); !cmp.Equal(got, []string{"update default"}) {
		t.Fatalf("after a readiness change: writes %v", got)
	}
}

func TestPodLabelChangeMovesItOut(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))),
		pod("a", "10.42.0.1", true), pod("b", "10.42.0.2", true))
	w.sync("web")
	w.updatePod(pod("b", "10.42.0.2", true, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }))
	w.sync("web")
	ss := w.endpoints("web").Subsets
	if len(ss) != 1 || len(ss[0].Addresses) != 1 || ss[0].Addresses[0].IP != "10.42.0.1" {
		t.Fatalf("subsets %+v, want only a", ss)
	}
	// The last pod leaves: the Endpoints stay, empty.
	w.updatePod(pod("a", "10.42.0.1", true, func(p *corev1.Pod) { p.Labels = nil }))
	w.sync("web")
	if ss := w.endpoints("web").Subsets; len(ss) != 0 {
		t.Fatalf("subsets %+v, want none", ss)
	}
}

func TestDeletedByHandRecreated(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))), pod("a", "10.42.0.1", true))
	w.sync("web")
	if err := w.client.CoreV1().Endpoints("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := w.sync("web"); !cmp.Equal(got, []string{"create default"}) {
		t.Fatalf("writes %v", got)
	}
}

func TestHandEditUndone(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))), pod("a", "10.42.0.1", true))
	w.sync("web")
	ep := w.endpoints("web")
	want := ep.Subsets
	ep.Subsets = []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.9"}}, Ports: []corev1.EndpointPort{epPort("http", 1)}}}
	ep.Annotations = map[string]string{"kept": "yes"}
	if _, err := w.client.CoreV1().Endpoints("default").Update(context.Background(), ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.sync("web")
	got := w.endpoints("web")
	if diff := cmp.Diff(want, got.Subsets); diff != "" {
		t.Fatalf("subsets not restored (-want +got):\n%s", diff)
	}
	if got.Annotations["kept"] != "yes" {
		t.Fatalf("annotations %v: an annotation the controller does not own was dropped", got.Annotations)
	}
}

func TestStaleCacheWritesNothing(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))), pod("a", "10.42.0.1", true))
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "7"}}
	w.create(ep)
	// The controller replaced version 7; a cache still showing it is
	// behind, and the write's own event will bring the Service back.
	w.c.replaced["default/web"] = "7"
	w.refresh()
	if err := w.c.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	for _, a := range w.client.Actions() {
		if a.GetResource().Resource == "endpoints" && a.GetVerb() == "update" {
			t.Fatal("updated from a stale cache")
		}
	}
}

func TestOverCapacityTruncated(t *testing.T) {
	objs := []runtime.Object{service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))}
	for i := range maxCapacity + 20 {
		objs = append(objs, pod(fmt.Sprintf("p%04d", i), fmt.Sprintf("10.42.%d.%d", i/250, i%250+1), i%2 == 0))
	}
	w := newWorld(t, objs...)
	w.sync("web")
	ep := w.endpoints("web")
	ready, notReady := 0, 0
	for _, s := range ep.Subsets {
		ready += len(s.Addresses)
		notReady += len(s.NotReadyAddresses)
	}
	// All 510 ready addresses stay; not-ready ones fill up to 1000.
	if ready != 510 || notReady != maxCapacity-510 {
		t.Fatalf("%d ready, %d not ready addresses", ready, notReady)
	}
	if ep.Annotations[corev1.EndpointsOverCapacity] != truncated {
		t.Fatalf("annotations %v", ep.Annotations)
	}
	if got := w.sync("web"); len(got) != 0 {
		t.Fatalf("resync of truncated endpoints: writes %v", got)
	}
	// Back under capacity: the annotation goes.
	for i := range 30 {
		if err := w.client.CoreV1().Pods("default").Delete(context.Background(), fmt.Sprintf("p%04d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w.sync("web")
	if _, ok := w.endpoints("web").Annotations[corev1.EndpointsOverCapacity]; ok {
		t.Fatal("over-capacity annotation kept under capacity")
	}
}

func TestTruncateReadyProportionally(t *testing.T) {
	mk := func(n int, prefix string) []corev1.EndpointAddress {
		out := make([]corev1.EndpointAddress, n)
		for i := range out {
			out[i] = corev1.EndpointAddress{IP: fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250)}
		}
		return out
	}
	in := []corev1.EndpointSubset{
		{Addresses: mk(1500, "10.1"), NotReadyAddresses: mk(10, "10.2"), Ports: []corev1.EndpointPort{epPort("a", 1)}},
		{Addresses: mk(500, "10.3"), Ports: []corev1.EndpointPort{epPort("b", 2)}},
		{NotReadyAddresses: mk(5, "10.4"), Ports: []corev1.EndpointPort{epPort("c", 3)}},
	}
	out, over := truncate(in)
	if !over {
		t.Fatal("not truncated")
	}
	// Ready addresses win; each subset keeps its share; a subset left
	// with no address is dropped.
	if len(out) != 2 || len(out[0].Addresses) != 750 || len(out[1].Addresses) != 250 || len(out[0].NotReadyAddresses) != 0 {
		t.Fatalf("truncated to %d subsets: %d/%d", len(out), len(out[0].Addresses), len(out[1].Addresses))
	}
}
