package podendpoint

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func svc(ns, name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: selector}}
}

func pod(labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", Labels: labels, ResourceVersion: "1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.42.0.1"},
	}
}

// recorder collects the keys a Handler enqueues.
type recorder struct{ keys []string }

func (r *recorder) add(k string) { r.keys = append(r.keys, k) }

func (r *recorder) take() []string {
	slices.Sort(r.keys)
	out := slices.Compact(r.keys)
	r.keys = nil
	return out
}

func TestHandlerEnqueuesSelectingServices(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, s := range []*corev1.Service{
		svc("default", "web", map[string]string{"app": "web"}),
		svc("default", "web-canary", map[string]string{"app": "web", "track": "canary"}),
		svc("default", "db", map[string]string{"app": "db"}),
		svc("default", "manual", nil),
		svc("other", "web", map[string]string{"app": "web"}),
	} {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	var r recorder
	h := Handler(corelisters.NewServiceLister(idx), r.add)

	web := pod(map[string]string{"app": "web"})
	h.OnAdd(web, false)
	if got := r.take(); !slices.Equal(got, []string{"default/web"}) {
		t.Fatalf("add: %v", got)
	}

	// Relabelled from web to db: both Services hear of it.
	db := web.DeepCopy()
	db.Labels, db.ResourceVersion = map[string]string{"app": "db"}, "2"
	h.OnUpdate(web, db)
	if got := r.take(); !slices.Equal(got, []string{"default/db", "default/web"}) {
		t.Fatalf("relabel: %v", got)
	}

	// Changes that do not matter to endpoints enqueue nothing.
	annotated := db.DeepCopy()
	annotated.Annotations, annotated.ResourceVersion = map[string]string{"a": "b"}, "3"
	h.OnUpdate(db, annotated)
	h.OnUpdate(annotated, annotated) // a resync
	if got := r.take(); len(got) != 0 {
		t.Fatalf("irrelevant update: %v", got)
	}

	// Readiness, IP and deletion changes do.
	ready := annotated.DeepCopy()
	ready.ResourceVersion = "4"
	ready.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	h.OnUpdate(annotated, ready)
	moved := ready.DeepCopy()
	moved.ResourceVersion = "5"
	moved.Status.PodIP = "10.42.0.2"
	h.OnUpdate(ready, moved)
	if got := r.take(); !slices.Equal(got, []string{"default/db"}) {
		t.Fatalf("readiness and IP changes: %v", got)
	}
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "default/p", Obj: moved})
	if got := r.take(); !slices.Equal(got, []string{"default/db"}) {
		t.Fatalf("delete: %v", got)
	}
}

func TestIncluded(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mutate      func(*corev1.Pod)
		want        bool
		terminating bool
	}{
		{name: "running", want: true},
		{name: "no IP", mutate: func(p *corev1.Pod) { p.Status.PodIP = "" }},
		{name: "only podIPs", mutate: func(p *corev1.Pod) { p.Status.PodIP, p.Status.PodIPs = "", []corev1.PodIP{{IP: "10.42.0.9"}} }, want: true},
		{name: "succeeded", mutate: func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }},
		{name: "failed", mutate: func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }},
		{name: "terminating", mutate: func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.Now()) }},
		{name: "terminating, included", mutate: func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.Now()) }, terminating: true, want: true},
	} {
		p := pod(nil)
		if tc.mutate != nil {
			tc.mutate(p)
		}
		if got := Included(p, tc.terminating); got != tc.want {
			t.Errorf("%s: Included = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPort(t *testing.T) {
	p := pod(nil)
	p.Spec.Containers = []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
		{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		{Name: "http", ContainerPort: 8080}, // protocol defaulted
	}}}
	p.Spec.InitContainers = []corev1.Container{
		{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 1000}}},
		{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15001}}},
	}
	for _, tc := range []struct {
		sp     corev1.ServicePort
		want   int32
		wantOK bool
	}{
		{sp: corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(9000)}, want: 9000, wantOK: true},
		{sp: corev1.ServicePort{Port: 80}, want: 80, wantOK: true},
		{sp: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}, want: 8080, wantOK: true},
		{sp: corev1.ServicePort{Port: 53, TargetPort: intstr.FromString("dns"), Protocol: corev1.ProtocolUDP}, want: 5353, wantOK: true},
		{sp: corev1.ServicePort{Port: 53, TargetPort: intstr.FromString("dns"), Protocol: corev1.ProtocolTCP}},
		{sp: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("proxy")}, want: 15001, wantOK: true},
		{sp: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("setup")}},
		{sp: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("missing")}},
	} {
		got, ok := Port(p, &tc.sp)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Port(%v/%s) = %d, %v; want %d, %v", tc.sp.TargetPort.String(), tc.sp.Protocol, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestHostname(t *testing.T) {
	s := svc("default", "db", map[string]string{"app": "db"})
	p := pod(nil)
	p.Spec.Hostname, p.Spec.Subdomain = "db-0", "db"
	if got := Hostname(p, s); got != "db-0" {
		t.Fatalf("Hostname = %q", got)
	}
	p.Spec.Subdomain = "other"
	if got := Hostname(p, s); got != "" {
		t.Fatalf("Hostname with another subdomain = %q", got)
	}
}
