// Package statefulset runs StatefulSets as upstream's controller does:
// pods named `<set>-<ordinal>` with that hostname and the governing
// service as subdomain, one claim per pod and volumeClaimTemplate made
// before the pod, OrderedReady creation (each pod waits for its
// predecessors to be Running and Ready) and scale-down from the highest
// ordinal (never while a pod is unhealthy), or Parallel, replacement of a
// vanished pod under the same name only once the old object is gone, and
// RollingUpdate (highest ordinal first, partition, maxUnavailable) or
// OnDelete updates tracked by ControllerRevisions.
package statefulset

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/claim"
	"github.com/skiff/skiff/pkg/controller/history"
	"github.com/skiff/skiff/pkg/controller/recorder"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

var gvk = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Controller runs StatefulSets.
type Controller struct {
	client    kubernetes.Interface
	sets      appslisters.StatefulSetLister
	pods      corelisters.PodLister
	claims    corelisters.PersistentVolumeClaimLister
	revisions appslisters.ControllerRevisionLister
	history   history.Store
	queue     workqueue.TypedRateLimitingInterface[string]
	clock     clock.Clock
	recorder  record.EventRecorder
	log       *slog.Logger
}

// New returns a Controller fed by f's informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.Clock, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, sets: f.Apps().V1().StatefulSets().Lister(), pods: f.Core().V1().Pods().Lister(),
		claims: f.Core().V1().PersistentVolumeClaims().Lister(), revisions: f.Apps().V1().ControllerRevisions().Lister(),
		history: history.Store{Client: client}, clock: clk, log: log, recorder: &record.FakeRecorder{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "statefulset"}),
	}
	if _, err := f.Apps().V1().StatefulSets().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(typedhandler.Funcs(
		func(p *corev1.Pod) { c.onPod(nil, p) },
		func(old, p *corev1.Pod) { c.onPod(old, p) },
		func(p *corev1.Pod) { c.onPod(nil, p) },
	))
	return c, err
}

func (c *Controller) onPod(old, p *corev1.Pod) {
	for _, q := range []*corev1.Pod{old, p} {
		if q == nil {
			continue
		}
		if ref := metav1.GetControllerOf(q); ref != nil {
			if ref.Kind == gvk.Kind && ref.APIVersion == gvk.GroupVersion().String() {
				c.queue.Add(q.Namespace + "/" + ref.Name)
			}
			continue
		}
		// An orphan: a set whose selector matches may adopt it.
		sets, _ := c.sets.StatefulSets(q.Namespace).List(labels.Everything())
		for _, s := range sets {
			if sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(q.Labels)) {
				c.queue.Add(s.Namespace + "/" + s.Name)
			}
		}
	}
}

// Run starts the recorder and n workers and runs until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, "statefulset-controller")
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

// sync brings one set a step closer to its spec and reports its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	set, err := c.sets.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	set = set.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		return fmt.Errorf("statefulset %s selector: %w", key, err)
	}
	owner := claim.Owner{Meta: set, Kind: gvk, Selector: sel}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := claim.Objects(ctx, owner, all, c.patchPod, nil)
	if err != nil {
		return err
	}
	allRevs, err := c.revisions.ControllerRevisions(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	revs, err := claim.Objects(ctx, owner, allRevs, c.patchRevision, nil)
	if err != nil {
		return err
	}
	revs = slices.Clone(revs)
	history.Sort(revs)
	collisions := ptr.Deref(set.Status.CollisionCount, 0)
	current, update, err := c.revisionsOf(ctx, set, revs, &collisions)
	if err != nil {
		return err
	}
	r := &run{c: c, set: set, current: current, update: update, now: c.clock.Now()}
	var manageErr error
	if set.DeletionTimestamp == nil {
		manageErr = r.manage(ctx, pods)
	}
	if err := c.updateStatus(ctx, set, r, pods, collisions); err != nil {
		return err
	}
	if manageErr != nil {
		return manageErr
	}
	if r.requeue > 0 {
		c.queue.AddAfter(key, r.requeue)
	}
	if !slices.ContainsFunc(revs, func(r *appsv1.ControllerRevision) bool { return r.Name == update.Name }) {
		revs = append(revs, update)
	}
	return c.truncate(ctx, set, pods, revs, current, update)
}

func (c *Controller) patchPod(ctx context.Context, p *corev1.Pod, patch []byte) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

func (c *Controller) patchRevision(ctx context.Context, r *appsv1.ControllerRevision, patch []byte) error {
	_, err := c.client.AppsV1().ControllerRevisions(r.Namespace).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// revisionsOf returns the set's current revision (status.currentRevision,
// or the update revision for a new set) and its update revision (that of
// its template, made or renumbered to be the newest).
func (c *Controller) revisionsOf(ctx context.Context, set *appsv1.StatefulSet, revs []*appsv1.ControllerRevision, collisions *int32) (current, update *appsv1.ControllerRevision, err error) {
	update, err = c.history.ForTemplate(ctx, set, gvk, &set.Spec.Template, revs, collisions)
	if err != nil {
		return nil, nil, err
	}
	current = update
	for _, r := range revs {
		if r.Name == set.Status.CurrentRevision {
			current = r
		}
	}
	return current, update, nil
}

// run is one sync of one set.
type run struct {
	c               *Controller
	set             *appsv1.StatefulSet
	current, update *appsv1.ControllerRevision
	now             time.Time
	// requeue asks for another sync after a pod becomes available.
	requeue time.Duration
}

func (r *run) monotonic() bool {
	return r.set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
}

// healthy reports whether p is Running, Ready and available; a pod that
// is not yet available asks for a later sync.
func (r *run) healthy(p *corev1.Pod) bool {
	switch d := availableIn(p, r.set.Spec.MinReadySeconds, r.now); {
	case d == 0:
		return true
	case d > 0 && (r.requeue == 0 || d < r.requeue):
		r.requeue = d
	}
	return false
}

// manage creates, replaces and deletes pods: the ordinals in range first,
// then those beyond it (scale-down), then the rolling update.
func (r *run) manage(ctx context.Context, pods []*corev1.Pod) error {
	start, n := startOrdinal(r.set), replicas(r.set)
	slots := make([]*corev1.Pod, n)
	var condemned []*corev1.Pod
	for _, p := range pods {
		ord, ok := ordinalOf(r.set, p)
		switch {
		case !ok:
		case ord >= start && ord < start+n:
			slots[ord-start] = p
		default:
			condemned = append(condemned, p)
		}
	}
	// Highest ordinal first.
	slices.SortFunc(condemned, func(a, b *corev1.Pod) int {
		x, _ := ordinalOf(r.set, a)
		y, _ := ordinalOf(r.set, b)
		return y - x
	})
	monotonic := r.monotonic()
	var firstErr error
	allHealthy := true
	for i, p := range slots {
		ord := start + i
		switch {
		case p == nil:
			allHealthy = false
			if err := r.createPod(ctx, ord); err != nil {
				if monotonic {
					return err
				}
				firstErr = cmpErr(firstErr, err)
			}
		case p.DeletionTimestamp != nil:
			// Its replacement waits for the object to be gone: never two
			// pods with one identity.
			allHealthy = false
		case finished(p):
			allHealthy = false
			if err := r.deletePod(ctx, p, "pod "+p.Name+" is "+string(p.Status.Phase)); err != nil {
				firstErr = cmpErr(firstErr, err)
			}
		default:
			if err := r.ensureClaims(ctx, p, false); err != nil {
				firstErr = cmpErr(firstErr, err)
			}
			if r.healthy(p) {
				continue
			}
			allHealthy = false
		}
		if monotonic {
			return firstErr
		}
	}
	if firstErr != nil {
		return firstErr
	}
	// Scale down, highest ordinal first; when ordered, one at a time and
	// only while every other pod is healthy (the pod going may be not).
	unhealthy := map[*corev1.Pod]bool{}
	for _, p := range condemned {
		if !r.healthy(p) {
			unhealthy[p] = true
		}
	}
	for _, p := range condemned {
		if p.DeletionTimestamp != nil {
			if monotonic {
				return nil
			}
			continue
		}
		if monotonic && (!allHealthy || len(unhealthy) > 1 || len(unhealthy) == 1 && !unhealthy[p]) {
			return nil
		}
		if err := r.ensureClaims(ctx, p, true); err != nil {
			return err
		}
		if err := r.deletePod(ctx, p, ""); err != nil {
			return err
		}
		if monotonic {
			return nil
		}
	}
	if len(condemned) > 0 && monotonic {
		return nil
	}
	return r.rollingUpdate(ctx, slots)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// rollingUpdate deletes outdated pods from the highest ordinal down to
// the partition, no more unavailable at once than maxUnavailable; their
// replacements come from the update revision.
func (r *run) rollingUpdate(ctx context.Context, slots []*corev1.Pod) error {
	if r.set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	partition, budget := r.partition(), 1
	if ru := r.set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, len(slots), true)
		if err != nil {
			return fmt.Errorf("statefulset %s/%s maxUnavailable: %w", r.set.Namespace, r.set.Name, err)
		}
		budget = max(v, 1)
	}
	for _, p := range slots {
		if p == nil || !r.healthy(p) {
			budget--
		}
	}
	for i := len(slots) - 1; i >= partition && budget > 0; i-- {
		p := slots[i]
		if p == nil || p.DeletionTimestamp != nil || p.Labels[appsv1.StatefulSetRevisionLabel] == r.update.Name {
			continue
		}
		if err := r.deletePod(ctx, p, ""); err != nil {
			return err
		}
		if r.healthy(p) {
			budget--
		}
	}
	return nil
}

func (r *run) partition() int {
	if ru := r.set.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		return int(ptr.Deref(ru.Partition, 0))
	}
	return 0
}

// revisionFor is the revision a new pod with ordinal is made from: the
// current one below a rolling update's partition, else the update one.
func (r *run) revisionFor(ordinal int) *appsv1.ControllerRevision {
	if r.set.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType && ordinal-startOrdinal(r.set) < r.partition() {
		return r.current
	}
	return r.update
}

func (r *run) createPod(ctx context.Context, ordinal int) error {
	rev := r.revisionFor(ordinal)
	template, err := history.Template(rev)
	if err != nil {
		return err
	}
	pod := newPod(r.set, template, rev.Name, ordinal)
	if err := r.ensureClaims(ctx, pod, false); err != nil {
		return err
	}
	_, err = r.c.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // the cache is behind
	}
	if err != nil {
		r.c.recorder.Eventf(r.set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", pod.Name, r.set.Name, err)
		return fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	r.c.recorder.Eventf(r.set, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", pod.Name, r.set.Name)
	return nil
}

func (r *run) deletePod(ctx context.Context, p *corev1.Pod, why string) error {
	err := r.c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		r.c.recorder.Eventf(r.set, corev1.EventTypeWarning, "FailedDelete", "delete Pod %s in StatefulSet %s failed error: %v", p.Name, r.set.Name, err)
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	if why != "" {
		r.c.recorder.Eventf(r.set, corev1.EventTypeWarning, "RecreatingFailedPod", "StatefulSet %s/%s is recreating %s", r.set.Namespace, r.set.Name, why)
	}
	r.c.recorder.Eventf(r.set, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, r.set.Name)
	return nil
}
