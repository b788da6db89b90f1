package deployment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const (
	testNS   = "default"
	testName = "web"
	testKey  = testNS + "/" + testName
)

// world is a fake API server that behaves like skiff's where the
// controller can tell (UIDs, creation times, generations, resource
// versions with optimistic concurrency, status subresources), with the
// controller's caches refreshed from it around every sync. settle plays
// the ReplicaSet controller and the kubelets.
type world struct {
	t      *testing.T
	client *fake.Clientset
	// tracker stores the fake API server's objects. It is a plain one:
	// the field-managed tracker of fake.NewClientset costs more than
	// the controller under test.
	tracker k8stesting.ObjectTracker
	f       informers.SharedInformerFactory
	clock   *clocktesting.FakeClock
	c       *Controller
	rec     *record.FakeRecorder
	seq     atomic.Int64
	// conflicts counts syncs that failed on a stale cache and were run
	// again, as the workqueue's rate-limited retry would.
	conflicts int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, client: &fake.Clientset{}, clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	w.tracker = k8stesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())
	w.client.AddReactor("*", "*", k8stesting.ObjectReaction(w.tracker))
	for _, res := range []string{"deployments", "replicasets"} {
		w.client.PrependReactor("*", res, w.serve)
	}
	w.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.UID == "" {
			p.UID = types.UID(fmt.Sprintf("pod-uid-%d", w.seq.Add(1)))
		}
		return false, nil, nil
	})
	w.f = informers.NewSharedInformerFactory(w.client, 0)
	c, err := New(w.client, w.f, w.clock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w.rec = record.NewFakeRecorder(1000)
	c.recorder = w.rec
	w.c = c
	t.Cleanup(c.queue.ShutDown)
	return w
}

// serve handles creates, updates and patches of Deployments and
// ReplicaSets as the API server does.
func (w *world) serve(action k8stesting.Action) (bool, runtime.Object, error) {
	tr := w.tracker
	gvr, ns := action.GetResource(), action.GetNamespace()
	switch a := action.(type) {
	case k8stesting.CreateActionImpl:
		obj := a.GetObject().DeepCopyObject()
		m := mustMeta(obj)
		n := w.seq.Add(1)
		if m.GetUID() == "" {
			m.SetUID(types.UID(fmt.Sprintf("%s-uid-%d", gvr.Resource, n)))
		}
		// Strictly increasing, so creation order is never a tie.
		m.SetCreationTimestamp(metav1.NewTime(w.clock.Now().Add(time.Duration(n) * time.Millisecond)))
		m.SetGeneration(1)
		m.SetResourceVersion(strconv.FormatInt(n, 10))
		switch o := obj.(type) {
		case *appsv1.Deployment:
			o.Status = appsv1.DeploymentStatus{}
		case *appsv1.ReplicaSet:
			o.Status = appsv1.ReplicaSetStatus{}
		}
		if err := tr.Create(gvr, obj, ns); err != nil {
			return true, nil, err
		}
		return true, obj.DeepCopyObject(), nil
	case k8stesting.UpdateActionImpl:
		obj := a.GetObject().DeepCopyObject()
		m := mustMeta(obj)
		stored, err := tr.Get(gvr, ns, m.GetName())
		if err != nil {
			return true, nil, err
		}
		sm := mustMeta(stored)
		if rv := m.GetResourceVersion(); rv != "" && rv != sm.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(),
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		obj = merge(stored, obj, a.GetSubresource() == "status")
		mustMeta(obj).SetResourceVersion(strconv.FormatInt(w.seq.Add(1), 10))
		if err := tr.Update(gvr, obj, ns); err != nil {
			return true, nil, err
		}
		return true, obj.DeepCopyObject(), nil
	case k8stesting.PatchActionImpl:
		_, obj, err := k8stesting.ObjectReaction(tr)(a)
		if err != nil {
			return true, nil, err
		}
		mustMeta(obj).SetResourceVersion(strconv.FormatInt(w.seq.Add(1), 10))
		if err := tr.Update(gvr, obj, ns); err != nil {
			return true, nil, err
		}
		return true, obj.DeepCopyObject(), nil
	}
	return false, nil, nil
}

// merge returns what the API server stores for an update of stored with
// obj: a status update changes only the status; a main-resource update
// keeps the status and bumps the generation when the spec changed.
func merge(stored, obj runtime.Object, status bool) runtime.Object {
	switch s := stored.(type) {
	case *appsv1.Deployment:
		o := obj.(*appsv1.Deployment)
		if status {
			out := s.DeepCopy()
			out.Status = o.Status
			return out
		}
		o.Status, o.UID, o.CreationTimestamp, o.Generation = s.Status, s.UID, s.CreationTimestamp, s.Generation
		if !apiequality.Semantic.DeepEqual(o.Spec, s.Spec) {
			o.Generation++
		}
		return o
	case *appsv1.ReplicaSet:
		o := obj.(*appsv1.ReplicaSet)
		if status {
			out := s.DeepCopy()
			out.Status = o.Status
			return out
		}
		o.Status, o.UID, o.CreationTimestamp, o.Generation = s.Status, s.UID, s.CreationTimestamp, s.Generation
		if !apiequality.Semantic.DeepEqual(o.Spec, s.Spec) {
			o.Generation++
		}
		return o
	}
	panic(fmt.Sprintf("unexpected %T", stored))
}

func mustMeta(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(err)
	}
	return m
}

// refresh copies the fake API server's objects into the caches.
func (w *world) refresh() {
	w.t.Helper()
	ctx := context.Background()
	ds, err := w.client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var objs []any
	for i := range ds.Items {
		objs = append(objs, &ds.Items[i])
	}
	if err := w.f.Apps().V1().Deployments().Informer().GetIndexer().Replace(objs, ""); err != nil {
		w.t.Fatal(err)
	}
	rss, err := w.client.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	objs = nil
	for i := range rss.Items {
		objs = append(objs, &rss.Items[i])
	}
	if err := w.f.Apps().V1().ReplicaSets().Informer().GetIndexer().Replace(objs, ""); err != nil {
		w.t.Fatal(err)
	}
	pods, err := w.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	objs = nil
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	if err := w.f.Core().V1().Pods().Informer().GetIndexer().Replace(objs, ""); err != nil {
		w.t.Fatal(err)
	}
}

// syncErr runs one sync on fresh caches.
func (w *world) syncErr() error {
	w.refresh()
	err := w.c.sync(context.Background(), testKey)
	w.refresh()
	return err
}

// sync runs a sync, running it again after a conflict with a stale
// cache (as the workqueue would), and fails the test on other errors.
func (w *world) sync() {
	w.t.Helper()
	for attempt := 0; ; attempt++ {
		err := w.syncErr()
		if err == nil {
			return
		}
		if apierrors.IsConflict(err) && attempt < 3 {
			w.conflicts++
			w.t.Logf("sync: %v (retried)", err)
			continue
		}
		w.t.Fatalf("sync: %v", err)
	}
}

// settle plays the ReplicaSet controller and the kubelets: every
// ReplicaSet runs spec.replicas pods at once, of which available(rs) are
// ready and available.
func (w *world) settle(available func(*appsv1.ReplicaSet) int32) {
	w.t.Helper()
	for _, rs := range w.rss() {
		st := rs.Status
		n := replicas(rs)
		a := min(available(rs), n)
		st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas, st.ObservedGeneration = n, n, a, a, rs.Generation
		if apiequality.Semantic.DeepEqual(st, rs.Status) {
			continue
		}
		rs.Status = st
		if _, err := w.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(context.Background(), rs, metav1.UpdateOptions{}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// allAvailable makes every pod available at once.
func allAvailable(rs *appsv1.ReplicaSet) int32 { return replicas(rs) }

// noneAvailableFor makes the pods of ReplicaSets with the image never
// available (a bad image, a failing readiness probe) and others at once.
func noneAvailableFor(image string) func(*appsv1.ReplicaSet) int32 {
	return func(rs *appsv1.ReplicaSet) int32 {
		if imageOf(rs) == image {
			return 0
		}
		return replicas(rs)
	}
}

// lag makes pods available one settle after they appear, as kubelets
// starting containers and passing readiness probes would.
type lag map[string]int32

func (l lag) available(rs *appsv1.ReplicaSet) int32 {
	n := min(replicas(rs), l[rs.Name])
	l[rs.Name] = replicas(rs)
	return n
}

func (w *world) deployment() *appsv1.Deployment {
	w.t.Helper()
	d, err := w.client.AppsV1().Deployments(testNS).Get(context.Background(), testName, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// rss returns the ReplicaSets in the API, oldest first.
func (w *world) rss() []*appsv1.ReplicaSet {
	w.t.Helper()
	l, err := w.client.AppsV1().ReplicaSets(testNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []*appsv1.ReplicaSet
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp) })
	return out
}

// owned returns the ReplicaSets d controls.
func (w *world) owned(d *appsv1.Deployment) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range w.rss() {
		if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	return out
}

// resetQueue gives the controller an empty queue, forgetting the
// requeues of earlier syncs.
func (w *world) resetQueue() {
	w.c.queue.ShutDown()
	w.c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment", Clock: w.clock})
	w.t.Cleanup(w.c.queue.ShutDown)
}

// rsFor returns the ReplicaSet running image, or nil.
func (w *world) rsFor(image string) *appsv1.ReplicaSet {
	w.t.Helper()
	var found *appsv1.ReplicaSet
	for _, rs := range w.rss() {
		if imageOf(rs) == image {
			if found != nil {
				w.t.Fatalf("two ReplicaSets run %s: %s and %s", image, found.Name, rs.Name)
			}
			found = rs
		}
	}
	return found
}

// mustRS returns the ReplicaSet running image.
func (w *world) mustRS(image string) *appsv1.ReplicaSet {
	w.t.Helper()
	rs := w.rsFor(image)
	if rs == nil {
		w.t.Fatalf("no ReplicaSet runs %s; have %s", image, w.describe())
	}
	return rs
}

func imageOf(rs *appsv1.ReplicaSet) string {
	if len(rs.Spec.Template.Spec.Containers) == 0 {
		return ""
	}
	return rs.Spec.Template.Spec.Containers[0].Image
}

// sizes maps each ReplicaSet's image to its spec.replicas.
func (w *world) sizes() map[string]int32 {
	out := map[string]int32{}
	for _, rs := range w.rss() {
		out[imageOf(rs)] = replicas(rs)
	}
	return out
}

// describe prints the ReplicaSets for failure messages.
func (w *world) describe() string {
	s := ""
	for _, rs := range w.rss() {
		s += fmt.Sprintf("[%s %s rev=%s spec=%d status=%d avail=%d] ", rs.Name, imageOf(rs),
			rs.Annotations[RevisionAnnotation], replicas(rs), rs.Status.Replicas, rs.Status.AvailableReplicas)
	}
	return s
}

// create stores d through the API (which gives it a UID and a
// generation).
func (w *world) create(d *appsv1.Deployment) *appsv1.Deployment {
	w.t.Helper()
	out, err := w.client.AppsV1().Deployments(d.Namespace).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// update changes the Deployment as a user would (kubectl edit/scale).
func (w *world) update(f func(d *appsv1.Deployment)) *appsv1.Deployment {
	w.t.Helper()
	d := w.deployment()
	f(d)
	out, err := w.client.AppsV1().Deployments(testNS).Update(context.Background(), d, metav1.UpdateOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// createRS stores rs, then its status.
func (w *world) createRS(rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	w.t.Helper()
	ctx := context.Background()
	st := rs.Status
	out, err := w.client.AppsV1().ReplicaSets(rs.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	if st.ObservedGeneration == 0 && (st.Replicas > 0 || st.AvailableReplicas > 0) {
		st.ObservedGeneration = out.Generation
	}
	out.Status = st
	if out, err = w.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, out, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// events drains the recorded events.
func (w *world) events() []string {
	var out []string
	for {
		select {
		case e := <-w.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func template(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
	}
}

// newDeployment is a RollingUpdate Deployment as the API server defaults
// it, with the given surge and unavailability.
func newDeployment(n int32, image string, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: testName, Namespace: testNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(image),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			RevisionHistoryLimit:    ptr.To[int32](10),
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
	}
}

// ownedRS is a ReplicaSet of d for image as the controller makes one,
// with its pods all running and available.
func ownedRS(d *appsv1.Deployment, image string, n int32, rev int) *appsv1.ReplicaSet {
	tmpl := template(image)
	hash := ComputeHash(&tmpl, nil)
	tmpl.Labels[PodTemplateHashLabel] = hash
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace,
			Labels:          map[string]string{"app": "web", PodTemplateHashLabel: hash},
			Annotations:     map[string]string{RevisionAnnotation: strconv.Itoa(rev)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentKind)},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", PodTemplateHashLabel: hash}},
			Template: tmpl,
		},
		Status: appsv1.ReplicaSetStatus{Replicas: n, ReadyReplicas: n, AvailableReplicas: n, FullyLabeledReplicas: n},
	}
}

func progressingOf(d *appsv1.Deployment) *appsv1.DeploymentCondition {
	return condition(d.Status, appsv1.DeploymentProgressing)
}

func availableOf(d *appsv1.Deployment) *appsv1.DeploymentCondition {
	return condition(d.Status, appsv1.DeploymentAvailable)
}

// wantProgressing fails unless the Progressing condition has status and
// reason.
func wantProgressing(t *testing.T, d *appsv1.Deployment, st corev1.ConditionStatus, reason string) {
	t.Helper()
	c := progressingOf(d)
	if c == nil || c.Status != st || c.Reason != reason {
		t.Fatalf("Progressing = %+v, want %s/%s", c, st, reason)
	}
}

// rollout syncs and settles until the Deployment's rollout is complete,
// calling check after every sync and every settle; it returns the number
// of syncs.
func (w *world) rollout(available func(*appsv1.ReplicaSet) int32, check func(step int)) int {
	w.t.Helper()
	for step := 1; step <= 50; step++ {
		w.sync()
		if check != nil {
			check(step)
		}
		w.settle(available)
		if check != nil {
			check(step)
		}
		d := w.deployment()
		if c := progressingOf(d); c != nil && c.Reason == reasonNewRSAvailable && d.Status.ObservedGeneration == d.Generation &&
			complete(d, d.Status) && len(active(w.owned(d))) == 1 {
			return step
		}
	}
	w.t.Fatalf("rollout did not complete: %s", w.describe())
	return 0
}
