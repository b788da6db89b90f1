// Package disruption is the disruption controller: it keeps the status of
// every PodDisruptionBudget current, as upstream's does, so that the
// pods/eviction subresource (pkg/registry/pod) can decide evictions from
// it alone.
//
// For each budget it finds the pods the selector matches and computes
//   - expectedPods: the number of matching pods when minAvailable is a
//     count; otherwise (minAvailable a percentage, or maxUnavailable) the
//     sum of the replicas of the pods' controllers, found through
//     ReplicaSet (or the Deployment owning it), StatefulSet and
//     ReplicationController;
//   - desiredHealthy: minAvailable, or expectedPods less maxUnavailable,
//     percentages rounded up against expectedPods;
//   - currentHealthy: Ready pods that are neither being deleted nor
//     recorded in status.disruptedPods by an eviction less than
//     disruptionbudget.DeletionTimeout ago;
//   - disruptionsAllowed: currentHealthy - desiredHealthy, never below 0,
//     and 0 while no pod is expected;
//
// prunes disruptedPods of pods that are gone, being deleted, or were not
// deleted in time, and sets observedGeneration and the DisruptionAllowed
// condition (SufficientPods or InsufficientPods). A budget whose status
// cannot be computed (a pod whose controller cannot be found) is set to
// allow no disruption, with reason SyncFailed, and retried with back-off.
package disruption

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/recorder"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
	"github.com/skiff/skiff/pkg/disruptionbudget"
)

// Controller computes PodDisruptionBudget status.
type Controller struct {
	client      kubernetes.Interface
	budgets     policylisters.PodDisruptionBudgetLister
	pods        corelisters.PodLister
	replicaSets appslisters.ReplicaSetLister
	deployments appslisters.DeploymentLister
	sets        appslisters.StatefulSetLister
	rcs         corelisters.ReplicationControllerLister
	queue       workqueue.TypedRateLimitingInterface[string]
	clock       clock.WithTicker
	recorder    record.EventRecorder
	log         *slog.Logger
}

// New returns the controller, its handlers registered on f's informers;
// clk dates disruptions and times their expiry.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client:      client,
		budgets:     f.Policy().V1().PodDisruptionBudgets().Lister(),
		pods:        f.Core().V1().Pods().Lister(),
		replicaSets: f.Apps().V1().ReplicaSets().Lister(),
		deployments: f.Apps().V1().Deployments().Lister(),
		sets:        f.Apps().V1().StatefulSets().Lister(),
		rcs:         f.Core().V1().ReplicationControllers().Lister(),
		clock:       clk, log: log, recorder: &record.FakeRecorder{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "disruption", Clock: clk}),
	}
	if _, err := f.Policy().V1().PodDisruptionBudgets().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	if _, err := f.Core().V1().Pods().Informer().AddEventHandler(typedhandler.Funcs(
		func(p *corev1.Pod) { c.enqueueCovering(p) },
		func(old, p *corev1.Pod) { c.enqueueCovering(old); c.enqueueCovering(p) },
		func(p *corev1.Pod) { c.enqueueCovering(p) },
	)); err != nil {
		return nil, err
	}
	// A controller's scale is the denominator of percentages: its change
	// alone (no pod yet created or deleted) changes budgets.
	scaled := []struct {
		inf      cache.SharedIndexInformer
		replicas func(any) (string, *int32)
	}{
		{f.Apps().V1().ReplicaSets().Informer(), func(o any) (string, *int32) { r := o.(*appsv1.ReplicaSet); return r.Namespace, r.Spec.Replicas }},
		{f.Apps().V1().Deployments().Informer(), func(o any) (string, *int32) { d := o.(*appsv1.Deployment); return d.Namespace, d.Spec.Replicas }},
		{f.Apps().V1().StatefulSets().Informer(), func(o any) (string, *int32) { s := o.(*appsv1.StatefulSet); return s.Namespace, s.Spec.Replicas }},
		{f.Core().V1().ReplicationControllers().Informer(), func(o any) (string, *int32) {
			r := o.(*corev1.ReplicationController)
			return r.Namespace, r.Spec.Replicas
		}},
	}
	for _, s := range scaled {
		_, err := s.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(old, cur any) {
			ns, was := s.replicas(old)
			_, is := s.replicas(cur)
			if ptr.Deref(was, 1) != ptr.Deref(is, 1) {
				c.enqueueNamespace(ns)
			}
		}})
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// enqueueCovering queues the budgets that select p.
func (c *Controller) enqueueCovering(p *corev1.Pod) {
	if p != nil {
		c.enqueueBudgets(p.Namespace, func(pdb *policyv1.PodDisruptionBudget) bool { return disruptionbudget.Selects(pdb, p) })
	}
}

// enqueueNamespace queues every budget of ns.
func (c *Controller) enqueueNamespace(ns string) {
	c.enqueueBudgets(ns, func(*policyv1.PodDisruptionBudget) bool { return true })
}

func (c *Controller) enqueueBudgets(ns string, match func(*policyv1.PodDisruptionBudget) bool) {
	budgets, err := c.budgets.PodDisruptionBudgets(ns).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pdb := range budgets {
		if match(pdb) {
			c.queue.Add(pdb.Namespace + "/" + pdb.Name)
		}
	}
}

// Run starts the recorder and n workers and runs until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, "controllermanager")
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

// sync recomputes one budget's status. A conflict is retried as it is;
// any other failure first sets the budget to allow no disruption.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	pdb, err := c.budgets.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	err = c.trySync(ctx, pdb)
	if err == nil || apierrors.IsConflict(err) {
		return err
	}
	if ferr := c.failSafe(ctx, pdb, err); ferr != nil {
		return fmt.Errorf("budget %s: %w (and setting SyncFailed: %v)", key, err, ferr)
	}
	return fmt.Errorf("budget %s: %w", key, err)
}

func (c *Controller) trySync(ctx context.Context, pdb *policyv1.PodDisruptionBudget) error {
	pods, err := c.podsFor(pdb)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "NoPods", "Failed to get pods: %v", err)
		return err
	}
	if len(pods) == 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	expected, desired, unmanaged, err := c.expectedCount(pdb, pods)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Failed to calculate the number of expected pods: %v", err)
		return err
	}
	if len(unmanaged) > 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "UnmanagedPods", "Pods selected by this PodDisruptionBudget (selector: %v) were found "+
			"to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. "+
			"To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.", pdb.Spec.Selector)
	}
	now := c.clock.Now()
	disrupted, recheck, late := disruptedPods(pods, pdb.Status.DisruptedPods, now)
	for _, p := range late {
		c.recorder.Eventf(p, corev1.EventTypeWarning, "NotDeleted", "Pod was expected by PDB %s/%s to be deleted but it wasn't", pdb.Namespace, pdb.Name)
	}
	st := budgetStatus(pdb, expected, desired, countHealthy(pods, disrupted, now), disrupted)
	if err := c.update(ctx, pdb, st, now); err != nil {
		return err
	}
	if recheck != nil {
		// A recorded disruption expires then: the pod counts again.
		c.queue.AddAfter(pdb.Namespace+"/"+pdb.Name, recheck.Sub(now))
	}
	return nil
}

// podsFor returns the pods pdb selects: every pod of the namespace for an
// empty selector, none for a missing one.
func (c *Controller) podsFor(pdb *policyv1.PodDisruptionBudget) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil, err
	}
	return c.pods.Pods(pdb.Namespace).List(sel)
}

// budgetStatus is pdb's status for the given counts: what the controller
// writes, with the conditions left as they are.
func budgetStatus(pdb *policyv1.PodDisruptionBudget, expected, desired, healthy int32, disrupted map[string]metav1.Time) policyv1.PodDisruptionBudgetStatus {
	allowed := healthy - desired
	// No expected pod means the first pods have not been counted yet: no
	// disruption until they are.
	if expected <= 0 || allowed <= 0 {
		allowed = 0
	}
	return policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptedPods:      disrupted,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     healthy,
		DesiredHealthy:     desired,
		ExpectedPods:       expected,
		Conditions:         pdb.Status.Conditions,
	}
}

// update writes st (with its DisruptionAllowed condition) unless the
// budget already has it.
func (c *Controller) update(ctx context.Context, pdb *policyv1.PodDisruptionBudget, st policyv1.PodDisruptionBudgetStatus, now time.Time) error {
	old := pdb.Status
	if old.CurrentHealthy == st.CurrentHealthy && old.DesiredHealthy == st.DesiredHealthy && old.ExpectedPods == st.ExpectedPods &&
		old.DisruptionsAllowed == st.DisruptionsAllowed && apiequality.Semantic.DeepEqual(old.DisruptedPods, st.DisruptedPods) &&
		old.ObservedGeneration == st.ObservedGeneration && disruptionbudget.ConditionUpToDate(pdb) {
		return nil
	}
	next := pdb.DeepCopy()
	next.Status = st
	next.Status.Conditions = slices.Clone(st.Conditions)
	disruptionbudget.SetDisruptionAllowed(next, now)
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

// failSafe records that the budget's status could not be computed: no
// disruption allowed, condition False with reason SyncFailed.
func (c *Controller) failSafe(ctx context.Context, pdb *policyv1.PodDisruptionBudget, cause error) error {
	next := pdb.DeepCopy()
	next.Status.DisruptionsAllowed = 0
	disruptionbudget.SetCondition(next, metav1.Condition{
		Type:               policyv1.DisruptionAllowedCondition,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1.SyncFailedReason,
		Message:            cause.Error(),
		ObservedGeneration: next.Status.ObservedGeneration,
		LastTransitionTime: metav1.NewTime(c.clock.Now()),
	})
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

// expectedCount returns expectedPods and desiredHealthy, and the names of
// matching pods no controller owns (which a percentage cannot account
// for).
func (c *Controller) expectedCount(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (expected, desired int32, unmanaged []string, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		if expected, unmanaged, err = c.expectedScale(pods); err != nil {
			return 0, 0, nil, err
		}
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, err
		}
		desired = max(expected-int32(maxUnavailable), 0)
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		expected, desired = int32(len(pods)), pdb.Spec.MinAvailable.IntVal
	case pdb.Spec.MinAvailable != nil:
		if expected, unmanaged, err = c.expectedScale(pods); err != nil {
			return 0, 0, nil, err
		}
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, err
		}
		desired = int32(minAvailable)
	}
	return expected, desired, unmanaged, nil
}

// expectedScale sums the replicas of the pods' controllers, each counted
// once; a pod with no controller is unmanaged, one whose controller is
// not found (or of an unsupported kind) is an error.
func (c *Controller) expectedScale(pods []*corev1.Pod) (int32, []string, error) {
	scales := map[types.UID]int32{}
	seen := map[types.UID]bool{}
	var unmanaged []string
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			unmanaged = append(unmanaged, p.Name)
			continue
		}
		if seen[ref.UID] {
			continue
		}
		uid, scale, ok := c.scaleOf(ref, p.Namespace)
		if !ok {
			return 0, nil, fmt.Errorf("found no controllers for pod %q", p.Name)
		}
		seen[ref.UID] = true
		scales[uid] = scale
	}
	var sum int32
	for _, n := range scales {
		sum += n
	}
	return sum, unmanaged, nil
}

// scaleOf finds the controller ref names and returns the uid and replicas
// of what scales it: the ReplicaSet, or the Deployment that owns it; the
// StatefulSet; the ReplicationController.
func (c *Controller) scaleOf(ref *metav1.OwnerReference, ns string) (types.UID, int32, bool) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", 0, false
	}
	switch {
	case ref.Kind == "ReplicaSet" && (gv.Group == "apps" || gv.Group == "extensions"):
		rs, err := c.replicaSets.ReplicaSets(ns).Get(ref.Name)
		if err != nil || rs.UID != ref.UID {
			return "", 0, false
		}
		owner := metav1.GetControllerOf(rs)
		if owner == nil || owner.Kind != "Deployment" {
			return rs.UID, ptr.Deref(rs.Spec.Replicas, 1), true
		}
		if og, err := schema.ParseGroupVersion(owner.APIVersion); err != nil || (og.Group != "apps" && og.Group != "extensions") {
			return "", 0, false
		}
		d, err := c.deployments.Deployments(ns).Get(owner.Name)
		if err != nil || d.UID != owner.UID {
			return "", 0, false
		}
		return d.UID, ptr.Deref(d.Spec.Replicas, 1), true
	case ref.Kind == "StatefulSet" && gv.Group == "apps":
		s, err := c.sets.StatefulSets(ns).Get(ref.Name)
		if err != nil || s.UID != ref.UID {
			return "", 0, false
		}
		return s.UID, ptr.Deref(s.Spec.Replicas, 1), true
	case ref.Kind == "ReplicationController" && gv.Group == "":
		rc, err := c.rcs.ReplicationControllers(ns).Get(ref.Name)
		if err != nil || rc.UID != ref.UID {
			return "", 0, false
		}
		return rc.UID, ptr.Deref(rc.Spec.Replicas, 1), true
	}
	return "", 0, false
}

// disruptedPods returns the entries of recorded that still hold at now:
// the pod exists, is not being deleted, and was evicted less than
// DeletionTimeout ago. It also returns when the first of them expires
// (nil: none) and the pods whose entry expired without their deletion.
func disruptedPods(pods []*corev1.Pod, recorded map[string]metav1.Time, now time.Time) (map[string]metav1.Time, *time.Time, []*corev1.Pod) {
	out := map[string]metav1.Time{}
	if recorded == nil {
		return out, nil, nil
	}
	var recheck *time.Time
	var late []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		at, ok := recorded[p.Name]
		if !ok {
			continue
		}
		expires := at.Add(disruptionbudget.DeletionTimeout)
		if expires.Before(now) {
			late = append(late, p)
			continue
		}
		if recheck == nil || expires.Before(*recheck) {
			recheck = &expires
		}
		out[p.Name] = at
	}
	return out, recheck, late
}

// countHealthy counts the healthy pods that are neither being deleted
// nor disrupted.
func countHealthy(pods []*corev1.Pod, disrupted map[string]metav1.Time, now time.Time) int32 {
	var n int32
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if at, ok := disrupted[p.Name]; ok && at.Add(disruptionbudget.DeletionTimeout).After(now) {
			continue
		}
		if disruptionbudget.Healthy(p) {
			n++
		}
	}
	return n
}
