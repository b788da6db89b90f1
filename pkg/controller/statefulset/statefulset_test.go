package statefulset

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/history"
)

// world is a fake API and the controller over it; its listers are
// refreshed from the fake before and after every sync, so each step sees
// exactly what the previous one wrote.
type world struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	c      *Controller
	clk    *testingclock.FakeClock
}

func newSet(n int32, policy appsv1.PodManagementPolicyType) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "set-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(n), ServiceName: "web", PodManagementPolicy: policy,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "main", Image: "v1", VolumeMounts: []corev1.VolumeMount{{Name: "www", MountPath: "/data"}}}},
				},
			},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "www"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

func newWorld(t *testing.T, set *appsv1.StatefulSet) *world {
	client := fake.NewClientset(set)
	f := informers.NewSharedInformerFactory(client, 0)
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	c, err := New(client, f, clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, client: client, f: f, c: c, clk: clk}
}

// refresh puts the fake's objects into the listers.
func (w *world) refresh() {
	ctx := context.Background()
	put := func(inf cache.SharedIndexInformer, list runtime.Object, err error) {
		if err != nil {
			w.t.Fatal(err)
		}
		objs, err := meta.ExtractList(list)
		if err != nil {
			w.t.Fatal(err)
		}
		items := make([]any, len(objs))
		for i, o := range objs {
			items[i] = o
		}
		if err := inf.GetIndexer().Replace(items, ""); err != nil {
			w.t.Fatal(err)
		}
	}
	pods, err := w.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	put(w.f.Core().V1().Pods().Informer(), pods, err)
	pvcs, err := w.client.CoreV1().PersistentVolumeClaims("default").List(ctx, metav1.ListOptions{})
	put(w.f.Core().V1().PersistentVolumeClaims().Informer(), pvcs, err)
	sets, err := w.client.AppsV1().StatefulSets("default").List(ctx, metav1.ListOptions{})
	put(w.f.Apps().V1().StatefulSets().Informer(), sets, err)
	revs, err := w.client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{})
	put(w.f.Apps().V1().ControllerRevisions().Informer(), revs, err)
}

func (w *world) sync() {
	w.t.Helper()
	w.refresh()
	if err := w.c.sync(context.Background(), "default/web"); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) pods() []string {
	l, err := w.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var names []string
	for _, p := range l.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

func (w *world) pod(name string) *corev1.Pod {
	p, err := w.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) set() *appsv1.StatefulSet {
	s, err := w.client.AppsV1().StatefulSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) updateSet(change func(*appsv1.StatefulSet)) {
	s := w.set()
	change(s)
	s.Generation++
	if _, err := w.client.AppsV1().StatefulSets("default").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// setReady makes pods Running and Ready (ready) or Running and not.
func (w *world) setReady(ready bool, names ...string) {
	for _, n := range names {
		p := w.pod(n)
		p.Status.Phase = corev1.PodRunning
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(w.clk.Now())}}
		if _, err := w.client.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) wantPods(want ...string) {
	w.t.Helper()
	if got := w.pods(); !slices.Equal(got, want) {
		w.t.Fatalf("pods %v, want %v", got, want)
	}
}

func (w *world) claims() []string {
	l, err := w.client.CoreV1().PersistentVolumeClaims("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var names []string
	for _, c := range l.Items {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

// OrderedReady: one pod at a time, each after its predecessor is Ready,
// with its claim, name, hostname and subdomain.
func TestOrderedCreation(t *testing.T) {
	w := newWorld(t, newSet(3, appsv1.OrderedReadyPodManagement))
	w.sync()
	w.wantPods("web-0")
	w.sync()
	w.wantPods("web-0")
	p := w.pod("web-0")
	if p.Spec.Hostname != "web-0" || p.Spec.Subdomain != "web" || p.Labels[appsv1.StatefulSetPodNameLabel] != "web-0" || p.Labels[appsv1.PodIndexLabel] != "0" {
		t.Fatalf("identity: hostname %q subdomain %q labels %v", p.Spec.Hostname, p.Spec.Subdomain, p.Labels)
	}
	if v := p.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "www-web-0" {
		t.Fatalf("volumes %+v", v)
	}
	if c := w.claims(); !slices.Equal(c, []string{"www-web-0"}) {
		t.Fatalf("claims %v", c)
	}
	w.setReady(true, "web-0")
	w.sync()
	w.wantPods("web-0", "web-1")
	w.setReady(false, "web-1")
	w.sync()
	w.wantPods("web-0", "web-1")
	w.setReady(true, "web-1")
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
	w.setReady(true, "web-2")
	w.sync()
	st := w.set().Status
	if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.UpdatedReplicas != 3 || st.CurrentRevision != st.UpdateRevision || st.ObservedGeneration != 1 {
		t.Fatalf("status %+v", st)
	}
}

// minReadySeconds holds the next pod until its predecessor is available.
func TestMinReadySeconds(t *testing.T) {
	s := newSet(2, appsv1.OrderedReadyPodManagement)
	s.Spec.MinReadySeconds = 10
	w := newWorld(t, s)
	w.sync()
	w.setReady(true, "web-0")
	w.sync()
	w.wantPods("web-0")
	w.clk.Step(10 * time.Second)
	w.sync()
	w.wantPods("web-0", "web-1")
}

func TestParallelCreation(t *testing.T) {
	s := newSet(3, appsv1.ParallelPodManagement)
	s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	w := newWorld(t, s)
	w.sync()
	w.wantPods("web-5", "web-6", "web-7")
}

func running(t *testing.T, s *appsv1.StatefulSet) *world {
	t.Helper()
	w := newWorld(t, s)
	for range replicas(s) {
		w.sync()
		w.setReady(true, w.pods()...)
	}
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
	return w
}

// Scale-down deletes the highest ordinal first, one at a time, keeps the
// claims, and stops while a pod is unready.
func TestOrderedScaleDown(t *testing.T) {
	w := running(t, newSet(3, appsv1.OrderedReadyPodManagement))
	w.setReady(false, "web-0")
	w.updateSet(func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](1) })
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
	w.setReady(true, "web-0")
	w.sync()
	w.wantPods("web-0", "web-1")
	w.sync()
	w.wantPods("web-0")
	if c := w.claims(); !slices.Equal(c, []string{"www-web-0", "www-web-1", "www-web-2"}) {
		t.Fatalf("claims after scale-down %v", c)
	}
}

// A terminating pod is not replaced until its object is gone; a failed
// one is deleted, then replaced.
func TestReplacement(t *testing.T) {
	w := running(t, newSet(3, appsv1.OrderedReadyPodManagement))
	p := w.pod("web-1")
	p.DeletionTimestamp = ptr.To(metav1.NewTime(w.clk.Now()))
	if _, err := w.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.sync()
	if got := w.pod("web-1"); got.DeletionTimestamp == nil {
		t.Fatal("terminating web-1 was replaced")
	}
	if err := w.client.CoreV1().Pods("default").Delete(context.Background(), "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
	if v := w.pod("web-1").Spec.Volumes[0].PersistentVolumeClaim.ClaimName; v != "www-web-1" {
		t.Fatalf("replacement mounts %s", v)
	}
	w.setReady(true, "web-1")
	p = w.pod("web-2")
	p.Status.Phase = corev1.PodFailed
	if _, err := w.client.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.sync()
	w.wantPods("web-0", "web-1")
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
}

// whenScaled: Delete gives a condemned pod's claims the pod as owner;
// whenDeleted: Delete gives every claim the set as owner.
func TestRetentionPolicy(t *testing.T) {
	s := newSet(3, appsv1.OrderedReadyPodManagement)
	s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	}
	w := running(t, s)
	p := w.pod("web-2")
	p.UID = "web-2-uid"
	if _, err := w.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.updateSet(func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](2) })
	w.sync()
	w.wantPods("web-0", "web-1")
	owners := func(name string) []string {
		c, err := w.client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range c.OwnerReferences {
			out = append(out, r.Kind+"/"+r.Name)
		}
		return out
	}
	if o := owners("www-web-2"); !slices.Equal(o, []string{"StatefulSet/web", "Pod/web-2"}) {
		t.Fatalf("condemned claim owners %v", o)
	}
	if o := owners("www-web-0"); !slices.Equal(o, []string{"StatefulSet/web"}) {
		t.Fatalf("claim owners %v", o)
	}
}

// A rolling update replaces pods from the highest ordinal down to the
// partition, one at a time, each after the last is Ready.
func TestRollingUpdatePartition(t *testing.T) {
	w := running(t, newSet(3, appsv1.OrderedReadyPodManagement))
	first := w.set().Status.CurrentRevision
	w.updateSet(func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Image = "v2"
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1)}
	})
	w.sync()
	w.wantPods("web-0", "web-1")
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
	if img := w.pod("web-2").Spec.Containers[0].Image; img != "v2" {
		t.Fatalf("web-2 recreated with %s", img)
	}
	w.sync()
	w.wantPods("web-0", "web-1", "web-2") // web-2 not Ready yet
	w.setReady(true, "web-2")
	w.sync()
	w.wantPods("web-0", "web-2")
	w.sync()
	w.setReady(true, "web-1")
	w.sync()
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
	if img := w.pod("web-0").Spec.Containers[0].Image; img != "v1" {
		t.Fatalf("web-0 below the partition updated to %s", img)
	}
	st := w.set().Status
	if st.CurrentRevision != first || st.UpdateRevision == first || st.UpdatedReplicas != 2 || st.CurrentReplicas != 1 {
		t.Fatalf("status mid-rollout %+v", st)
	}
	w.updateSet(func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](0) })
	w.sync()
	w.sync()
	w.setReady(true, "web-0")
	w.sync()
	st = w.set().Status
	if st.CurrentRevision != st.UpdateRevision || st.UpdatedReplicas != 3 {
		t.Fatalf("status after rollout %+v", st)
	}
}

// maxUnavailable 2 with Parallel replaces two pods at once.
func TestRollingUpdateMaxUnavailable(t *testing.T) {
	s := newSet(3, appsv1.ParallelPodManagement)
	w := running(t, s)
	w.updateSet(func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Image = "v2"
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptr.To(intstr.FromInt32(2))}
	})
	w.sync()
	w.wantPods("web-0")
}

// OnDelete leaves pods alone; a deleted one comes back updated.
func TestOnDelete(t *testing.T) {
	s := newSet(3, appsv1.OrderedReadyPodManagement)
	s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	w := running(t, s)
	w.updateSet(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "v2" })
	w.sync()
	w.wantPods("web-0", "web-1", "web-2")
	if err := w.client.CoreV1().Pods("default").Delete(context.Background(), "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.sync()
	if img := w.pod("web-1").Spec.Containers[0].Image; img != "v2" {
		t.Fatalf("recreated web-1 runs %s", img)
	}
	if img := w.pod("web-2").Spec.Containers[0].Image; img != "v1" {
		t.Fatalf("web-2 runs %s under OnDelete", img)
	}
}

// Each template is one revision; going back to an old one renumbers it;
// revisions beyond the limit that no pod uses are deleted.
func TestRevisionHistory(t *testing.T) {
	s := newSet(1, appsv1.OrderedReadyPodManagement)
	s.Spec.RevisionHistoryLimit = ptr.To[int32](0)
	s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	w := newWorld(t, s)
	w.sync()
	w.setReady(true, "web-0")
	w.sync()
	revisions := func() map[string]int64 {
		l, err := w.client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for i := range l.Items {
			tpl, err := history.Template(&l.Items[i])
			if err != nil {
				t.Fatal(err)
			}
			out[tpl.Spec.Containers[0].Image] = l.Items[i].Revision
		}
		return out
	}
	for _, img := range []string{"v2", "v3"} {
		w.updateSet(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = img })
		w.sync()
		w.sync()
	}
	// web-0 still runs v1 (OnDelete): v1 is live, v3 the update, v2 is
	// beyond the limit of none.
	if got := revisions(); len(got) != 2 || got["v1"] != 1 || got["v3"] != 3 {
		t.Fatalf("revisions %v, want v1:1 v3:3", got)
	}
	w.updateSet(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "v1" })
	w.sync()
	if got := revisions(); got["v1"] != 4 || w.set().Status.UpdateRevision != w.pod("web-0").Labels[appsv1.StatefulSetRevisionLabel] {
		t.Fatalf("back to v1: revisions %v, status %+v", got, w.set().Status)
	}
}
