// Package deployment rolls Deployments out as upstream's controller does.
// A Deployment never manages pods itself: it owns one ReplicaSet per
// distinct pod template, named <deployment>-<pod-template-hash>, and moves
// replicas between them — RollingUpdate within maxSurge/maxUnavailable
// (scaling the old ReplicaSets down only as new pods become available),
// Recreate (all old pods gone before new ones start), proportional scaling
// when the replica count changes mid-rollout, pause/resume, revision
// annotations for `kubectl rollout history/undo` and revisionHistoryLimit
// clean-up — and reports replicas, updated/ready/available/unavailable
// counts and the Available and Progressing conditions (with
// progressDeadlineSeconds).
package deployment

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/skiff/skiff/pkg/controller/recorder"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

var (
	deploymentKind = appsv1.SchemeGroupVersion.WithKind("Deployment")
	rsKind         = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
)

// Controller is the Deployment controller.
type Controller struct {
	client      kubernetes.Interface
	deployments appslisters.DeploymentLister
	rss         appslisters.ReplicaSetLister
	pods        corelisters.PodLister
	queue       workqueue.TypedRateLimitingInterface[string]
	clock       clock.WithTicker
	recorder    record.EventRecorder
	log         *slog.Logger
}

// New returns the Deployment controller over f's informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, deployments: f.Apps().V1().Deployments().Lister(), rss: f.Apps().V1().ReplicaSets().Lister(),
		pods: f.Core().V1().Pods().Lister(), clock: clk, log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment", Clock: clk}),
	}
	enqueue := func(d *appsv1.Deployment) { c.queue.Add(d.Namespace + "/" + d.Name) }
	if _, err := f.Apps().V1().Deployments().Informer().AddEventHandler(typedhandler.Funcs(
		enqueue, func(_, d *appsv1.Deployment) { enqueue(d) }, enqueue,
	)); err != nil {
		return nil, err
	}
	if _, err := f.Apps().V1().ReplicaSets().Informer().AddEventHandler(typedhandler.Funcs(
		func(rs *appsv1.ReplicaSet) { c.onReplicaSet(nil, rs) },
		func(old, rs *appsv1.ReplicaSet) { c.onReplicaSet(old, rs) },
		func(rs *appsv1.ReplicaSet) { c.onReplicaSet(nil, rs) },
	)); err != nil {
		return nil, err
	}
	// Recreate waits for old pods to go or finish: that wakes it.
	onPod := func(p *corev1.Pod) {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == rsKind.Kind {
			if rs, err := c.rss.ReplicaSets(p.Namespace).Get(ref.Name); err == nil {
				c.onReplicaSet(nil, rs)
			}
		}
	}
	finished := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(typedhandler.Funcs(nil, func(old, p *corev1.Pod) {
		if !finished(old) && finished(p) {
			onPod(p)
		}
	}, onPod))
	return c, err
}

func (c *Controller) onReplicaSet(old, rs *appsv1.ReplicaSet) {
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if ref.Kind == deploymentKind.Kind && ref.APIVersion == deploymentKind.GroupVersion().String() {
			c.queue.Add(rs.Namespace + "/" + ref.Name)
		}
	} else if rs.DeletionTimestamp == nil {
		c.enqueueMatching(rs)
	}
	if old != nil {
		if ref := metav1.GetControllerOf(old); ref != nil && ref.Kind == deploymentKind.Kind {
			c.queue.Add(old.Namespace + "/" + ref.Name)
		}
	}
}

// enqueueMatching wakes the Deployments that may adopt an orphan.
func (c *Controller) enqueueMatching(rs *appsv1.ReplicaSet) {
	ds, err := c.deployments.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, d := range ds {
		if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(rs.Labels)) {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}

// Run starts the event recorder and n workers and runs until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, "deployment-controller")
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	cached, err := c.deployments.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	d := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return fmt.Errorf("deployment %s selector: %w", key, err)
	}
	if sel.Empty() {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			_, err = c.client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		}
		return err
	}
	rsList, err := c.claim(ctx, d, sel)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatusOnly(ctx, d, rsList)
	}
	if err := c.checkPausedConditions(ctx, d); err != nil {
		return err
	}
	if d.Spec.Paused {
		return c.scaleOnly(ctx, d, rsList)
	}
	if scaling, err := c.isScalingEvent(ctx, d, rsList); err != nil {
		return err
	} else if scaling {
		return c.scaleOnly(ctx, d, rsList)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return c.rolloutRecreate(ctx, d, rsList, sel)
	}
	return c.rolloutRolling(ctx, d, rsList)
}

// claim adopts orphan ReplicaSets that match the selector and releases
// owned ones that stopped matching; it returns the Deployment's.
func (c *Controller) claim(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rss.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	return claim.Objects(ctx, claim.Owner{Meta: d, Kind: deploymentKind, Selector: sel}, all,
		func(ctx context.Context, rs *appsv1.ReplicaSet, patch []byte) error {
			_, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}, nil)
}

// scaleReplicaSet sets rs's replicas to n (with the desired/max replicas
// annotations of d) and records the event; it returns the stored rs.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment) (*appsv1.ReplicaSet, error) {
	sizeChanged := replicas(rs) != n
	annotationsChanged := setReplicasAnnotations(rs.DeepCopy(), replicas(d), replicas(d)+maxSurge(d))
	if !sizeChanged && !annotationsChanged {
		return rs, nil
	}
	rs = rs.DeepCopy()
	old := replicas(rs)
	rs.Spec.Replicas = &n
	setReplicasAnnotations(rs, replicas(d), replicas(d)+maxSurge(d))
	out, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("scale replica set %s/%s to %d: %w", rs.Namespace, rs.Name, n, err)
	}
	if sizeChanged {
		op := "up"
		if n < old {
			op = "down"
		}
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", op, rs.Name, old, n)
	}
	return out, nil
}

func replicas[T interface {
	*appsv1.ReplicaSet | *appsv1.Deployment
}](o T) int32 {
	var p *int32
	switch v := any(o).(type) {
	case *appsv1.ReplicaSet:
		p = v.Spec.Replicas
	case *appsv1.Deployment:
		p = v.Spec.Replicas
	}
	if p == nil {
		return 1
	}
	return *p
}

// byCreation sorts ReplicaSets oldest first (name breaks ties).
func byCreation(rss []*appsv1.ReplicaSet) {
	sort.SliceStable(rss, func(i, j int) bool {
		a, b := rss[i], rss[j]
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.Name < b.Name
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
}

// active returns the ReplicaSets with replicas.
func active(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if rs != nil && replicas(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

func sum(rss []*appsv1.ReplicaSet, f func(*appsv1.ReplicaSet) int32) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += f(rs)
		}
	}
	return n
}

func specReplicas(rs *appsv1.ReplicaSet) int32      { return replicas(rs) }
func statusReplicas(rs *appsv1.ReplicaSet) int32    { return rs.Status.Replicas }
func availableReplicas(rs *appsv1.ReplicaSet) int32 { return rs.Status.AvailableReplicas }
func readyReplicas(rs *appsv1.ReplicaSet) int32     { return rs.Status.ReadyReplicas }

// requeueAfter schedules another look at key.
func (c *Controller) requeueAfter(d *appsv1.Deployment, after time.Duration) {
	c.queue.AddAfter(d.Namespace+"/"+d.Name, after)
}
