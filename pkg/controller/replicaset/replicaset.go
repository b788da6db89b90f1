// Package replicaset keeps ReplicaSets and ReplicationControllers at their
// replica count, as upstream's controllers do (one implementation, two
// kinds): it adopts orphan pods that match the selector, releases pods
// whose labels stop matching, creates missing pods from the template and
// deletes surplus ones (unscheduled, pending, not ready and newest first),
// and reports replicas, fullyLabeledReplicas, readyReplicas,
// availableReplicas and observedGeneration through the status
// subresource. Expectations keep a burst of watch events from creating or
// deleting twice.
package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/skiff/skiff/pkg/controller/recorder"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/claim"
	"github.com/skiff/skiff/pkg/controller/expectations"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// burstReplicas bounds the creations or deletions of one sync (upstream's
// 500).
const burstReplicas = 500

// owner is a ReplicaSet or ReplicationController as the controller sees it.
type owner struct {
	obj             runtime.Object
	meta            metav1.Object
	replicas        int32
	minReadySeconds int32
	selector        labels.Selector
	template        *corev1.PodTemplateSpec
	status          status
}

// status is the replica counts both kinds report, and their
// ReplicaFailure condition.
type status struct {
	Replicas, FullyLabeledReplicas, ReadyReplicas, AvailableReplicas int32
	ObservedGeneration                                               int64
	Failure                                                          failure
}

// failure is the ReplicaFailure condition (zero: none): set, as upstream,
// when creating or deleting pods fails (reason FailedCreate or
// FailedDelete, the error as message), kept as first set while failures
// go on, and removed by the first sync that manages without error.
type failure struct {
	Reason, Message string
	Since           metav1.Time
}

// replicaFailure is the ReplicaFailure condition type of both kinds.
const replicaFailure = "ReplicaFailure"

// kind adapts one of the two resources.
type kind interface {
	gvk() schema.GroupVersionKind
	informer() cache.SharedIndexInformer
	get(ns, name string) (*owner, error)
	list(ns string) ([]*owner, error)
	updateStatus(ctx context.Context, o *owner, st status) error
}

// Controller runs one kind.
type Controller struct {
	kind     kind
	client   kubernetes.Interface
	pods     corelisters.PodLister
	queue    workqueue.TypedRateLimitingInterface[string]
	exp      *expectations.Expectations
	clock    clock.Clock
	recorder record.EventRecorder
	log      *slog.Logger
}

// NewReplicaSet returns the ReplicaSet controller.
func NewReplicaSet(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.Clock, log *slog.Logger) (*Controller, error) {
	return newController(rsKind{client: client, inf: f.Apps().V1().ReplicaSets()}, client, f, clk, log)
}

// NewReplicationController returns the ReplicationController controller.
func NewReplicationController(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.Clock, log *slog.Logger) (*Controller, error) {
	return newController(rcKind{client: client, inf: f.Core().V1().ReplicationControllers()}, client, f, clk, log)
}

func newController(k kind, client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.Clock, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		kind: k, client: client, pods: f.Core().V1().Pods().Lister(), exp: expectations.New(clk), clock: clk, log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: k.gvk().Kind}),
	}
	if _, err := k.informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(typedhandler.Funcs(
		func(p *corev1.Pod) { c.onPod(nil, p, false) },
		func(old, p *corev1.Pod) { c.onPod(old, p, false) },
		func(p *corev1.Pod) { c.onPod(nil, p, true) },
	))
	return c, err
}

// controllerKey returns the key of the pod's controller if it is of this
// kind.
func (c *Controller) controllerKey(p *corev1.Pod) (string, bool) {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != c.kind.gvk().Kind || ref.APIVersion != c.kind.gvk().GroupVersion().String() {
		return "", false
	}
	return p.Namespace + "/" + ref.Name, true
}

func (c *Controller) onPod(old, p *corev1.Pod, deleted bool) {
	if key, ok := c.controllerKey(p); ok {
		switch {
		case deleted || p.DeletionTimestamp != nil:
			// A graceful deletion shows first as the timestamp: a
			// replacement need not wait for the pod to go.
			c.exp.ObservedDelete(key, p.UID)
		case old == nil:
			c.exp.ObservedCreate(key)
		}
		c.queue.Add(key)
	} else if !deleted && p.DeletionTimestamp == nil {
		// An orphan: any controller whose selector matches may adopt it.
		c.enqueueMatching(p)
	}
	if old != nil {
		if oldKey, ok := c.controllerKey(old); ok {
			c.queue.Add(oldKey)
		}
		if !labels.Equals(old.Labels, p.Labels) {
			c.enqueueMatching(p)
		}
	}
}

func (c *Controller) enqueueMatching(p *corev1.Pod) {
	owners, err := c.kind.list(p.Namespace)
	if err != nil {
		return
	}
	for _, o := range owners {
		if o.selector.Matches(labels.Set(p.Labels)) {
			c.queue.Add(o.meta.GetNamespace() + "/" + o.meta.GetName())
		}
	}
}

// Run starts the recorder and n workers and runs until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, controllerName(c.kind.gvk().Kind))
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log.With("kind", c.kind.gvk().Kind))
}

func controllerName(kind string) string {
	if kind == "ReplicaSet" {
		return "replicaset-controller"
	}
	return "replication-controller"
}

func isActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	o, err := c.kind.get(ns, name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := c.claim(ctx, o, all)
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	for _, p := range pods {
		if isActive(p) {
			active = append(active, p)
		}
	}
	var manageErr error
	if c.exp.Satisfied(key) && o.meta.GetDeletionTimestamp() == nil {
		manageErr = c.manage(ctx, key, o, active)
	}
	if err := c.updateStatus(ctx, o, active, manageErr); err != nil {
		return err
	}
	// Pods that become available later need another look.
	if manageErr == nil && o.minReadySeconds > 0 && o.status.ReadyReplicas != o.status.AvailableReplicas {
		c.queue.AddAfter(key, time.Duration(o.minReadySeconds)*time.Second)
	}
	return manageErr
}

// claim adopts matching orphans and releases owned pods that no longer
// match; it returns the pods this controller owns afterwards.
func (c *Controller) claim(ctx context.Context, o *owner, all []*corev1.Pod) ([]*corev1.Pod, error) {
	return claim.Objects(ctx, claim.Owner{Meta: o.meta, Kind: c.kind.gvk(), Selector: o.selector}, all, c.patchPod, nil)
}

func (c *Controller) patchPod(ctx context.Context, p *corev1.Pod, patch []byte) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// manage creates or deletes pods to reach the replica count.
func (c *Controller) manage(ctx context.Context, key string, o *owner, active []*corev1.Pod) error {
	diff := len(active) - int(o.replicas)
	switch {
	case diff < 0:
		n := min(-diff, burstReplicas)
		c.exp.Expect(key, int64(n), nil)
		// Slow start (1, 2, 4, ...) so a failing template fails cheaply.
		created := 0
		for batch := 1; created < n; batch = min(2*batch, n-created) {
			batch = min(batch, n-created)
			errs := make(chan error, batch)
			for range batch {
				go func() { errs <- c.createPod(ctx, o) }()
			}
			var first error
			for range batch {
				if err := <-errs; err != nil {
					c.exp.ObservedCreate(key)
					if first == nil {
						first = err
					}
				}
			}
			created += batch
			if first != nil {
				// The rest are not created: no longer expected.
				for range n - created {
					c.exp.ObservedCreate(key)
				}
				return first
			}
		}
	case diff > 0:
		n := min(diff, burstReplicas)
		victims := deletionOrder(active, c.clock.Now())[:n]
		uids := make([]types.UID, len(victims))
		for i, p := range victims {
			uids[i] = p.UID
		}
		c.exp.Expect(key, 0, uids)
		// All at once, as upstream: a scale-down should not trail the
		// scale-up it makes room for.
		errs := make(chan error, len(victims))
		for _, p := range victims {
			go func() { errs <- c.deletePod(ctx, key, o, p) }()
		}
		var first error
		for range victims {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	return nil
}

func (c *Controller) deletePod(ctx context.Context, key string, o *owner, p *corev1.Pod) error {
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil {
		c.exp.ObservedDelete(key, p.UID)
		if apierrors.IsNotFound(err) {
			return nil
		}
		c.recorder.Eventf(o.obj, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.recorder.Eventf(o.obj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	return nil
}

func (c *Controller) createPod(ctx context.Context, o *owner) error {
	t := o.template
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    o.meta.GetName() + "-",
			Namespace:       o.meta.GetNamespace(),
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(o.meta, c.kind.gvk())},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	created, err := c.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.recorder.Eventf(o.obj, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(o.obj, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
	return nil
}

// deletionOrder sorts pods the way upstream picks them for scale-down:
// unassigned before assigned, pending before unknown before running, not
// ready before ready, ready for less time first, more restarts first,
// newer first.
func deletionOrder(pods []*corev1.Pod, now time.Time) []*corev1.Pod {
	out := append([]*corev1.Pod(nil), pods...)
	phaseRank := map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}
	restarts := func(p *corev1.Pod) int32 {
		var n int32
		for _, s := range p.Status.ContainerStatuses {
			n = max(n, s.RestartCount)
		}
		return n
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
			return a.Spec.NodeName == ""
		}
		if pa, pb := phaseRank[a.Status.Phase], phaseRank[b.Status.Phase]; pa != pb {
			return pa < pb
		}
		ra, rb := readySince(a), readySince(b)
		if (ra == nil) != (rb == nil) {
			return ra == nil
		}
		if ra != nil && !ra.Equal(*rb) {
			return ra.After(*rb)
		}
		if x, y := restarts(a), restarts(b); x != y {
			return x > y
		}
		return a.CreationTimestamp.After(b.CreationTimestamp.Time)
	})
	return out
}

// readySince is when the pod became Ready, nil if it is not.
func readySince(p *corev1.Pod) *time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			t := c.LastTransitionTime.Time
			return &t
		}
	}
	return nil
}

// updateStatus reports the counts if they changed.
func (c *Controller) updateStatus(ctx context.Context, o *owner, active []*corev1.Pod, manageErr error) error {
	st := status{Replicas: int32(len(active)), ObservedGeneration: o.meta.GetGeneration(), Failure: o.status.Failure}
	templateLabels := labels.Set(o.template.Labels)
	now := c.clock.Now()
	switch {
	case manageErr != nil && st.Failure.Reason == "":
		reason := "FailedCreate"
		if len(active) > int(o.replicas) {
			reason = "FailedDelete"
		}
		st.Failure = failure{Reason: reason, Message: manageErr.Error(), Since: metav1.NewTime(now)}
	case manageErr == nil:
		st.Failure = failure{}
	}
	for _, p := range active {
		if labels.SelectorFromSet(templateLabels).Matches(labels.Set(p.Labels)) {
			st.FullyLabeledReplicas++
		}
		if since := readySince(p); since != nil {
			st.ReadyReplicas++
			if o.minReadySeconds == 0 || now.Sub(*since) >= time.Duration(o.minReadySeconds)*time.Second {
				st.AvailableReplicas++
			}
		}
	}
	if st == o.status {
		return nil
	}
	o.status = st
	err := c.kind.updateStatus(ctx, o, st)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // the next event brings a newer object
	}
	return err
}

// ---- the two kinds ----

type rsKind struct {
	client kubernetes.Interface
	inf    interface {
		Informer() cache.SharedIndexInformer
		Lister() appslisters.ReplicaSetLister
	}
}

func (rsKind) gvk() schema.GroupVersionKind { return appsv1.SchemeGroupVersion.WithKind("ReplicaSet") }

func (k rsKind) informer() cache.SharedIndexInformer { return k.inf.Informer() }

func rsOwner(rs *appsv1.ReplicaSet) (*owner, error) {
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("replicaset %s/%s selector: %w", rs.Namespace, rs.Name, err)
	}
	replicas := int32(1)
	if rs.Spec.Replicas != nil {
		replicas = *rs.Spec.Replicas
	}
	s := rs.Status
	return &owner{obj: rs, meta: rs, replicas: replicas, minReadySeconds: rs.Spec.MinReadySeconds, selector: sel, template: &rs.Spec.Template,
		status: status{s.Replicas, s.FullyLabeledReplicas, s.ReadyReplicas, s.AvailableReplicas, s.ObservedGeneration, failureOf(s.Conditions)}}, nil
}

func (k rsKind) get(ns, name string) (*owner, error) {
	rs, err := k.inf.Lister().ReplicaSets(ns).Get(name)
	if err != nil {
		return nil, err
	}
	return rsOwner(rs)
}

func (k rsKind) list(ns string) ([]*owner, error) {
	l, err := k.inf.Lister().ReplicaSets(ns).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*owner
	for _, rs := range l {
		if o, err := rsOwner(rs); err == nil {
			out = append(out, o)
		}
	}
	return out, nil
}

func (k rsKind) updateStatus(ctx context.Context, o *owner, st status) error {
	rs := o.obj.(*appsv1.ReplicaSet).DeepCopy()
	rs.Status.Replicas, rs.Status.FullyLabeledReplicas, rs.Status.ReadyReplicas = st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas
	rs.Status.AvailableReplicas, rs.Status.ObservedGeneration = st.AvailableReplicas, st.ObservedGeneration
	rs.Status.Conditions = slices.DeleteFunc(rs.Status.Conditions, func(c appsv1.ReplicaSetCondition) bool { return c.Type == replicaFailure })
	if f := st.Failure; f.Reason != "" {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{
			Type: replicaFailure, Status: corev1.ConditionTrue, Reason: f.Reason, Message: f.Message, LastTransitionTime: f.Since})
	}
	_, err := k.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
	return err
}

type rcKind struct {
	client kubernetes.Interface
	inf    interface {
		Informer() cache.SharedIndexInformer
		Lister() corelisters.ReplicationControllerLister
	}
}

func (rcKind) gvk() schema.GroupVersionKind {
	return corev1.SchemeGroupVersion.WithKind("ReplicationController")
}

func (k rcKind) informer() cache.SharedIndexInformer { return k.inf.Informer() }

func rcOwner(rc *corev1.ReplicationController) (*owner, error) {
	if rc.Spec.Template == nil {
		return nil, fmt.Errorf("replicationcontroller %s/%s has no template", rc.Namespace, rc.Name)
	}
	sel := labels.SelectorFromSet(rc.Spec.Selector)
	if len(rc.Spec.Selector) == 0 {
		sel = labels.SelectorFromSet(rc.Spec.Template.Labels)
	}
	replicas := int32(1)
	if rc.Spec.Replicas != nil {
		replicas = *rc.Spec.Replicas
	}
	s := rc.Status
	return &owner{obj: rc, meta: rc, replicas: replicas, minReadySeconds: rc.Spec.MinReadySeconds, selector: sel, template: rc.Spec.Template,
		status: status{s.Replicas, s.FullyLabeledReplicas, s.ReadyReplicas, s.AvailableReplicas, s.ObservedGeneration, rcFailureOf(s.Conditions)}}, nil
}

func (k rcKind) get(ns, name string) (*owner, error) {
	rc, err := k.inf.Lister().ReplicationControllers(ns).Get(name)
	if err != nil {
		return nil, err
	}
	return rcOwner(rc)
}

func (k rcKind) list(ns string) ([]*owner, error) {
	l, err := k.inf.Lister().ReplicationControllers(ns).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*owner
	for _, rc := range l {
		if o, err := rcOwner(rc); err == nil {
			out = append(out, o)
		}
	}
	return out, nil
}

func (k rcKind) updateStatus(ctx context.Context, o *owner, st status) error {
	rc := o.obj.(*corev1.ReplicationController).DeepCopy()
	rc.Status.Replicas, rc.Status.FullyLabeledReplicas, rc.Status.ReadyReplicas = st.Replicas, st.FullyLabeledReplicas, st.ReadyReplicas
	rc.Status.AvailableReplicas, rc.Status.ObservedGeneration = st.AvailableReplicas, st.ObservedGeneration
	rc.Status.Conditions = slices.DeleteFunc(rc.Status.Conditions, func(c corev1.ReplicationControllerCondition) bool { return c.Type == replicaFailure })
	if f := st.Failure; f.Reason != "" {
		rc.Status.Conditions = append(rc.Status.Conditions, corev1.ReplicationControllerCondition{
			Type: replicaFailure, Status: corev1.ConditionTrue, Reason: f.Reason, Message: f.Message, LastTransitionTime: f.Since})
	}
	_, err := k.client.CoreV1().ReplicationControllers(rc.Namespace).UpdateStatus(ctx, rc, metav1.UpdateOptions{})
	return err
}

// failureOf reads a ReplicaSet's ReplicaFailure condition.
func failureOf(conds []appsv1.ReplicaSetCondition) failure {
	for _, c := range conds {
		if c.Type == replicaFailure && c.Status == corev1.ConditionTrue {
			return failure{Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime}
		}
	}
	return failure{}
}

// rcFailureOf reads a ReplicationController's ReplicaFailure condition.
func rcFailureOf(conds []corev1.ReplicationControllerCondition) failure {
	for _, c := range conds {
		if c.Type == replicaFailure && c.Status == corev1.ConditionTrue {
			return failure{Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime}
		}
	}
	return failure{}
}
