package endpointslice

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/slicewriter"
)

// world is a fake API server with the controller's caches refreshed from
// it around every sync, so each sync sees the latest state. The fake
// names created slices as the server would.
type world struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	clock  *clocktesting.FakeClock
	c      *Controller
	seq    atomic.Int64
}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	t.Helper()
	w := &world{t: t, client: fake.NewClientset(objs...), clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	w.client.PrependReactor("create", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.CreateAction).GetObject().(*discoveryv1.EndpointSlice)
		n := w.seq.Add(1)
		s.Name = fmt.Sprintf("%s%05d", s.GenerateName, n)
		s.UID = types.UID(fmt.Sprintf("slice-uid-%d", n))
		return false, nil, nil
	})
	w.f = informers.NewSharedInformerFactory(w.client, 0)
	c, err := New(w.client, w.f, w.clock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = record.NewFakeRecorder(100)
	w.c = c
	return w
}

// refresh copies the fake API server's objects into the caches; slices
// only if withSlices (false: the slice cache lags).
func (w *world) refresh(withSlices bool) {
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
	if !withSlices {
		return
	}
	objs = nil
	l, err := w.client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range l.Items {
		objs = append(objs, &l.Items[i])
	}
	w.replace(w.f.Discovery().V1().EndpointSlices().Informer().GetIndexer().Replace, objs)
}

func (w *world) replace(replace func([]any, string) error, objs []any) {
	if err := replace(objs, ""); err != nil {
		w.t.Fatal(err)
	}
}

// writes counts a sync's slice writes by verb.
type writes struct{ create, update, delete int }

// sync runs one sync of the Service and returns its slice writes.
func (w *world) sync(name string) writes {
	w.t.Helper()
	w.refresh(true)
	wr := w.syncOnly(name)
	w.refresh(true)
	return wr
}

// syncOnly runs one sync on the caches as they are.
func (w *world) syncOnly(name string) writes {
	w.t.Helper()
	before := len(w.client.Actions())
	if err := w.c.sync(context.Background(), "default/"+name); err != nil {
		w.t.Fatal(err)
	}
	var wr writes
	for _, a := range w.client.Actions()[before:] {
		if a.GetResource().Resource != "endpointslices" {
			continue
		}
		switch a.GetVerb() {
		case "create":
			wr.create++
		case "update":
			wr.update++
		case "delete":
			wr.delete++
		}
	}
	return wr
}

// slices returns the Service's slices by name.
func (w *world) slices(svc string) []discoveryv1.EndpointSlice {
	w.t.Helper()
	l, err := w.client.DiscoveryV1().EndpointSlices("default").List(context.Background(),
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		w.t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	return l.Items
}

// endpoints returns the endpoints of the Service's slices by pod name.
func (w *world) endpoints(svc string) map[string]discoveryv1.Endpoint {
	w.t.Helper()
	out := map[string]discoveryv1.Endpoint{}
	for _, s := range w.slices(svc) {
		for _, ep := range s.Endpoints {
			if _, dup := out[ep.TargetRef.Name]; dup {
				w.t.Fatalf("pod %s listed twice", ep.TargetRef.Name)
			}
			out[ep.TargetRef.Name] = ep
		}
	}
	return out
}

func (w *world) createPod(p *corev1.Pod) {
	w.t.Helper()
	if _, err := w.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) updatePod(p *corev1.Pod) {
	w.t.Helper()
	if _, err := w.client.CoreV1().Pods(p.Namespace).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) deletePod(name string) {
	w.t.Helper()
	if err := w.client.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) updateService(s *corev1.Service) {
	w.t.Helper()
	if _, err := w.client.CoreV1().Services(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

var webSelector = map[string]string{"app": "web"}

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

// pod returns a running pod labelled app=web on node-1 with a named port
// http:8080; ip "" leaves it without an address.
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

func terminating(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.Now()) }

func conditions(ready, serving, terminating bool) discoveryv1.EndpointConditions {
	return discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}
}

func endpoint(name, ip string, c discoveryv1.EndpointConditions) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses: []string{ip}, Conditions: c, NodeName: ptr.To("node-1"),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
	}
}

func slicePort(name string, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(p), Protocol: ptr.To(corev1.ProtocolTCP)}
}

func TestSliceContents(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))),
		pod("a", "10.42.0.1", true), pod("b", "10.42.0.2", false), pod("c", "10.42.0.3", true, terminating),
		pod("d", "10.42.0.4", false, terminating), pod("no-ip", "", true),
		pod("done", "10.42.0.5", true, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
		pod("db", "10.42.0.6", true, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "db"} }))
	if wr := w.sync("web"); wr != (writes{create: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	got := w.slices("web")
	if len(got) != 1 {
		t.Fatalf("%d slices", len(got))
	}
	s := got[0]
	if s.GenerateName != "web-" || s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Fatalf("generateName %q, addressType %q", s.GenerateName, s.AddressType)
	}
	wantLabels := map[string]string{"team": "a", discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: ControllerName}
	if diff := cmp.Diff(wantLabels, s.Labels); diff != "" {
		t.Fatalf("labels (-want +got):\n%s", diff)
	}
	wantOwner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web", UID: "svc-web", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	if diff := cmp.Diff(wantOwner, s.OwnerReferences); diff != "" {
		t.Fatalf("owner (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]discoveryv1.EndpointPort{slicePort("http", 8080)}, s.Ports); diff != "" {
		t.Fatalf("ports (-want +got):\n%s", diff)
	}
	want := map[string]discoveryv1.Endpoint{
		"a": endpoint("a", "10.42.0.1", conditions(true, true, false)),
		"b": endpoint("b", "10.42.0.2", conditions(false, false, false)),
		// Terminating pods stay, not ready, serving as long as they are.
		"c": endpoint("c", "10.42.0.3", conditions(false, true, true)),
		"d": endpoint("d", "10.42.0.4", conditions(false, false, true)),
	}
	if diff := cmp.Diff(want, w.endpoints("web")); diff != "" {
		t.Fatalf("endpoints (-want +got):\n%s", diff)
	}
}

func TestPublishNotReadyAddresses(t *testing.T) {
	svc := service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))
	svc.Spec.PublishNotReadyAddresses = true
	w := newWorld(t, svc, pod("b", "10.42.0.2", false), pod("c", "10.42.0.3", true, terminating))
	w.sync("web")
	want := map[string]discoveryv1.Endpoint{
		"b": endpoint("b", "10.42.0.2", conditions(true, false, false)),
		"c": endpoint("c", "10.42.0.3", conditions(true, true, true)),
	}
	if diff := cmp.Diff(want, w.endpoints("web")); diff != "" {
		t.Fatalf("endpoints (-want +got):\n%s", diff)
	}
}

func TestNamedTargetPortGroupsSlices(t *testing.T) {
	onPort := func(n int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = n }
	}
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromString("http")), port("metrics", 9100, intstr.FromInt32(9100))),
		pod("a", "10.42.0.1", true, onPort(8080)), pod("b", "10.42.0.2", true, onPort(9090)), pod("c", "10.42.0.3", true, onPort(8080)),
		pod("no-http", "10.42.0.4", true, func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }))
	w.sync("web")
	byPorts := map[string][]string{}
	for _, s := range w.slices("web") {
		var names []string
		for _, ep := range s.Endpoints {
			names = append(names, ep.TargetRef.Name)
		}
		slices.Sort(names)
		byPorts[portsKey(s.Ports)] = names
	}
	want := map[string][]string{
		"http/8080/TCP/-,metrics/9100/TCP/-": {"a", "c"},
		"http/9090/TCP/-,metrics/9100/TCP/-": {"b"},
		"metrics/9100/TCP/-":                 {"no-http"}, // without the named port
	}
	if diff := cmp.Diff(want, byPorts); diff != "" {
		t.Fatalf("slices by ports (-want +got):\n%s", diff)
	}
}

func TestHeadlessHostnames(t *testing.T) {
	svc := service("db", webSelector)
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	sub := func(s string) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = p.Name+"-host", s }
	}
	w := newWorld(t, svc, pod("a", "10.42.0.1", true, sub("db")), pod("b", "10.42.0.2", true, sub("other")))
	w.sync("db")
	got := w.slices("db")
	if len(got) != 1 || len(got[0].Ports) != 0 {
		t.Fatalf("slices %+v", got)
	}
	if _, ok := got[0].Labels[corev1.IsHeadlessService]; !ok {
		t.Fatalf("labels %v lack %s", got[0].Labels, corev1.IsHeadlessService)
	}
	eps := w.endpoints("db")
	if h := eps["a"].Hostname; h == nil || *h != "a-host" {
		t.Fatalf("a's hostname %v", h)
	}
	if h := eps["b"].Hostname; h != nil {
		t.Fatalf("b's hostname %q, its subdomain is another service", *h)
	}
}

func TestMoreThan100EndpointsSplit(t *testing.T) {
	objs := []runtime.Object{service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))}
	for i := range 250 {
		objs = append(objs, pod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.42.%d.%d", i/200, i%200+1), true))
	}
	w := newWorld(t, objs...)
	if wr := w.sync("web"); wr != (writes{create: 3}) {
		t.Fatalf("writes %+v", wr)
	}
	var sizes []int
	for _, s := range w.slices("web") {
		sizes = append(sizes, len(s.Endpoints))
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{50, 100, 100}) {
		t.Fatalf("slice sizes %v", sizes)
	}
	if n := len(w.endpoints("web")); n != 250 {
		t.Fatalf("%d endpoints", n)
	}
	if wr := w.sync("web"); wr != (writes{}) {
		t.Fatalf("resync: writes %+v", wr)
	}

	// Ten pods go and twenty come: the slices are updated in place,
	// nothing is recreated.
	names := map[string]bool{}
	for _, s := range w.slices("web") {
		names[s.Name] = true
	}
	for i := range 10 {
		w.deletePod(fmt.Sprintf("p%03d", i*20))
	}
	for i := range 20 {
		w.createPod(pod(fmt.Sprintf("q%03d", i), fmt.Sprintf("10.42.9.%d", i+1), true))
	}
	wr := w.sync("web")
	if wr.create != 0 || wr.delete != 0 {
		t.Fatalf("writes %+v, want updates only", wr)
	}
	for _, s := range w.slices("web") {
		if !names[s.Name] {
			t.Fatalf("new slice %s", s.Name)
		}
		if len(s.Endpoints) > maxEndpointsPerSlice {
			t.Fatalf("slice %s has %d endpoints", s.Name, len(s.Endpoints))
		}
	}
	if n := len(w.endpoints("web")); n != 260 {
		t.Fatalf("%d endpoints", n)
	}
}

func TestUnchangedResyncWritesNothing(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromString("http"))),
		pod("a", "10.42.0.1", true), pod("b", "10.42.0.2", false), pod("c", "10.42.0.3", true, terminating))
	w.sync("web")
	for range 3 {
		if wr := w.sync("web"); wr != (writes{}) {
			t.Fatalf("resync: writes %+v", wr)
		}
	}
	w.updatePod(pod("b", "10.42.0.2", true))
	if wr := w.sync("web"); wr != (writes{update: 1}) {
		t.Fatalf("after a readiness change: writes %+v", wr)
	}
	// A Service without pods keeps its placeholder, unwritten.
	w2 := newWorld(t, service("empty", webSelector, port("http", 80, intstr.FromInt32(8080))))
	if wr := w2.sync("empty"); wr != (writes{create: 1}) {
		t.Fatalf("placeholder: writes %+v", wr)
	}
	if wr := w2.sync("empty"); wr != (writes{}) {
		t.Fatalf("placeholder resync: writes %+v", wr)
	}
}

func TestPodLabelChangeMovesItOut(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))),
		pod("a", "10.42.0.1", true), pod("b", "10.42.0.2", true))
	w.sync("web")
	w.updatePod(pod("b", "10.42.0.2", true, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }))
	if wr := w.sync("web"); wr != (writes{update: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	if eps := w.endpoints("web"); len(eps) != 1 || eps["a"].Addresses == nil {
		t.Fatalf("endpoints %v, want only a", eps)
	}
	// The last one leaves: its slice becomes the placeholder.
	w.updatePod(pod("a", "10.42.0.1", true, func(p *corev1.Pod) { p.Labels = nil }))
	if wr := w.sync("web"); wr != (writes{update: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	got := w.slices("web")
	if len(got) != 1 || len(got[0].Endpoints) != 0 || len(got[0].Ports) != 0 {
		t.Fatalf("slices %+v, want the empty placeholder", got)
	}
}

func TestPortChangeRewritesSlices(t *testing.T) {
	svc := service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))
	w := newWorld(t, svc, pod("a", "10.42.0.1", true))
	w.sync("web")
	name := w.slices("web")[0].Name
	svc.Spec.Ports[0].TargetPort = intstr.FromInt32(9090)
	w.updateService(svc)
	if wr := w.sync("web"); wr != (writes{update: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	got := w.slices("web")
	if len(got) != 1 || got[0].Name != name || *got[0].Ports[0].Port != 9090 {
		t.Fatalf("slices %+v", got)
	}
}

func TestServiceDeletionDeletesSlices(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))), pod("a", "10.42.0.1", true))
	w.sync("web")
	if err := w.client.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if wr := w.sync("web"); wr != (writes{delete: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	if got := w.slices("web"); len(got) != 0 {
		t.Fatalf("%d slices outlived their service", len(got))
	}
	if wr := w.sync("web"); wr != (writes{}) {
		t.Fatalf("resync: writes %+v", wr)
	}
}

func TestSelectorlessServiceHasNoSlices(t *testing.T) {
	manual := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "ext-1", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: "ext", discoveryv1.LabelManagedBy: "someone-else"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.1"}}},
	}
	w := newWorld(t, service("ext", nil, port("pg", 5432, intstr.FromInt32(5432))), manual, pod("a", "10.42.0.1", true))
	if wr := w.sync("ext"); wr != (writes{}) {
		t.Fatalf("writes %+v", wr)
	}
	if got := w.slices("ext"); len(got) != 1 || got[0].Name != "ext-1" {
		t.Fatalf("slices %+v", got)
	}

	// A Service that loses its selector loses the slices this controller
	// made for it.
	svc := service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))
	if err := w.client.Tracker().Add(svc); err != nil {
		t.Fatal(err)
	}
	w.sync("web")
	svc.Spec.Selector = nil
	w.updateService(svc)
	if wr := w.sync("web"); wr != (writes{delete: 1}) {
		t.Fatalf("writes %+v", wr)
	}
}

func TestDeletedByHandRecreated(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))), pod("a", "10.42.0.1", true))
	w.sync("web")
	name := w.slices("web")[0].Name
	if err := w.client.DiscoveryV1().EndpointSlices("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.c.writer.ObservedDeletion("default/web", name) // as the informer's handler does
	if wr := w.sync("web"); wr != (writes{create: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	if n := len(w.endpoints("web")); n != 1 {
		t.Fatalf("%d endpoints", n)
	}
}

func TestStaleCacheDoesNotCreateTwice(t *testing.T) {
	w := newWorld(t, service("web", webSelector, port("http", 80, intstr.FromInt32(8080))), pod("a", "10.42.0.1", true))
	w.refresh(true)
	if wr := w.syncOnly("web"); wr != (writes{create: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	// A pod comes before the slice cache shows the created slice.
	w.createPod(pod("b", "10.42.0.2", true))
	w.refresh(false)
	if wr := w.syncOnly("web"); wr != (writes{}) {
		t.Fatalf("sync on a stale cache: writes %+v", wr)
	}
	// Once the cache catches up, b joins the existing slice.
	if wr := w.sync("web"); wr != (writes{update: 1}) {
		t.Fatalf("writes %+v", wr)
	}
	if got := w.slices("web"); len(got) != 1 || len(got[0].Endpoints) != 2 {
		t.Fatalf("slices %+v", got)
	}

	// A creation the cache never shows is given up on after a while.
	w.c.writer.Wrote("default/web", &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-lost"}})
	if wr := w.sync("web"); wr != (writes{}) {
		t.Fatalf("writes %+v", wr)
	}
	if !w.c.writer.Stale("default/web", nil) {
		t.Fatal("the lost creation is not waited for")
	}
	w.clock.Step(slicewriter.WriteTimeout + time.Second)
	w.createPod(pod("c", "10.42.0.3", true))
	if wr := w.sync("web"); wr != (writes{update: 1}) {
		t.Fatalf("after the timeout: writes %+v", wr)
	}
}

func TestDualStackHeadlessWithoutFamilies(t *testing.T) {
	svc := service("db", webSelector, port("pg", 5432, intstr.FromInt32(5432)))
	svc.Spec.ClusterIP, svc.Spec.IPFamilies = corev1.ClusterIPNone, nil
	dual := func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "10.42.0.1"}, {IP: "fd00:42::1"}} }
	w := newWorld(t, svc, pod("a", "10.42.0.1", true, dual))
	w.sync("db")
	types := map[discoveryv1.AddressType][]string{}
	for _, s := range w.slices("db") {
		for _, ep := range s.Endpoints {
			types[s.AddressType] = append(types[s.AddressType], ep.Addresses...)
		}
	}
	want := map[discoveryv1.AddressType][]string{discoveryv1.AddressTypeIPv4: {"10.42.0.1"}, discoveryv1.AddressTypeIPv6: {"fd00:42::1"}}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Fatalf("addresses by type (-want +got):\n%s", diff)
	}
}

// TestReconcileFillsBestFit checks the placement rules with small slices.
func TestReconcileFillsBestFit(t *testing.T) {
	svc := service("web", webSelector, port("http", 80, intstr.FromInt32(8080)))
	var pods []*corev1.Pod
	for i := range 6 {
		pods = append(pods, pod(fmt.Sprintf("p%d", i), fmt.Sprintf("10.42.0.%d", i+1), true))
	}
	existing := func(name string, pods ...*corev1.Pod) *discoveryv1.EndpointSlice {
		s := newSlice(svc, discoveryv1.AddressTypeIPv4, endpointPorts(svc, pods[0]))
		s.Name = name
		for _, p := range pods {
			s.Endpoints = append(s.Endpoints, *podToEndpoint(p, svc, discoveryv1.AddressTypeIPv4))
		}
		return s
	}
	// full holds three, roomy one: the two new endpoints fit roomy
	// exactly, which is updated; nothing is created.
	p := reconcile(svc, pods[:6], []*discoveryv1.EndpointSlice{existing("full", pods[0], pods[1], pods[2]), existing("roomy", pods[3])}, 3)
	if len(p.create) != 0 || len(p.delete) != 0 || len(p.update) != 1 || p.update[0].Name != "roomy" || len(p.update[0].Endpoints) != 3 {
		t.Fatalf("plan: %d creates, %d deletes, updates %v", len(p.create), len(p.delete), names(p.update))
	}
	// A pod of full goes: full is updated anyway and takes a newcomer
	// first.
	p = reconcile(svc, append(pods[1:3:3], pods[3], pods[4]), []*discoveryv1.EndpointSlice{existing("full", pods[0], pods[1], pods[2]), existing("roomy", pods[3])}, 3)
	if len(p.create) != 0 || len(p.delete) != 0 || len(p.update) != 1 || p.update[0].Name != "full" || len(p.update[0].Endpoints) != 3 {
		t.Fatalf("plan: %d creates, %d deletes, updates %v", len(p.create), len(p.delete), names(p.update))
	}
}

func names(l []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range l {
		out = append(out, s.Name)
	}
	return out
}
