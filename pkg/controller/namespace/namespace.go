// Package namespace is the namespace controller: when a namespace is
// deleted (Terminating, with the "kubernetes" finalizer in spec), it deletes
// every namespaced object in it, waits until they are gone, and then
// removes the finalizer through namespaces/finalize so the API server
// removes the namespace, as upstream's controller does.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/skiff/skiff/pkg/controller/workers"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Controller empties and finalizes deleted namespaces.
type Controller struct {
	client     kubernetes.Interface
	dynamic    dynamic.Interface
	discovery  discovery.DiscoveryInterface
	namespaces corelisters.NamespaceLister
	queue      workqueue.TypedRateLimitingInterface[string]
	log        *slog.Logger
	// Recheck is how soon a namespace whose contents are still going is
	// looked at again (default 2s).
	Recheck time.Duration
}

// New returns a Controller fed by f's namespace informer.
func New(client kubernetes.Interface, dyn dynamic.Interface, disc discovery.DiscoveryInterface, f informers.SharedInformerFactory, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, dynamic: dyn, discovery: disc,
		namespaces: f.Core().V1().Namespaces().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
		log:     log,
		Recheck: 2 * time.Second,
	}
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	_, err := f.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	return c, err
}

// Run processes deleted namespaces with n goroutines until ctx ends and
// they have stopped.
func (c *Controller) Run(ctx context.Context, n int) {
	workers.Run(ctx, c.queue, n, func(ctx context.Context, name string) error {
		remaining, err := c.sync(ctx, name)
		if err == nil && remaining {
			// Objects are still going: look again later.
			c.queue.AddAfter(name, c.Recheck)
		}
		return err
	}, c.log)
}

// sync deletes a terminating namespace's contents; it reports whether
// objects remain (come back later), and finalizes the namespace once none
// do.
func (c *Controller) sync(ctx context.Context, name string) (bool, error) {
	ns, err := c.namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if ns.DeletionTimestamp == nil || !hasFinalizer(ns) {
		return false, nil
	}
	resources, discoveryErr := c.namespacedResources()
	var errs []error
	left := map[string]int{}
	for _, gvr := range resources {
		n, err := c.deleteAll(ctx, name, gvr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", gvr.Resource, err))
		}
		if n > 0 {
			left[gvr.GroupResource().String()] = n
		}
	}
	if err := errors.Join(errs...); err != nil || discoveryErr != nil {
		c.setCondition(ctx, ns, corev1.NamespaceDeletionContentFailure, fmt.Sprint(errors.Join(err, discoveryErr)))
		return false, errors.Join(err, discoveryErr)
	}
	if len(left) > 0 {
		c.setCondition(ctx, ns, corev1.NamespaceContentRemaining, remainingMessage(left))
		return true, nil
	}
	return false, c.finalize(ctx, ns)
}

// namespacedResources are the served namespaced resources that can be
// listed and deleted as collections (preferred versions only).
func (c *Controller) namespacedResources() ([]schema.GroupVersionResource, error) {
	lists, err := discovery.ServerPreferredNamespacedResources(c.discovery)
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			verbs := sets.New(r.Verbs...)
			if strings.Contains(r.Name, "/") || !verbs.HasAll("list", "deletecollection") {
				continue
			}
			out = append(out, gv.WithResource(r.Name))
		}
	}
	// events.k8s.io events and core events are one storage: delete it once.
	return dedupeEvents(out), err
}

func dedupeEvents(in []schema.GroupVersionResource) []schema.GroupVersionResource {
	out := in[:0]
	seenEvents := false
	for _, gvr := range in {
		if gvr.Resource == "events" {
			if seenEvents {
				continue
			}
			seenEvents = true
		}
		out = append(out, gvr)
	}
	return out
}

// deleteAll deletes a resource's objects in the namespace and returns how
// many are still there (terminating pods, objects with finalizers).
func (c *Controller) deleteAll(ctx context.Context, ns string, gvr schema.GroupVersionResource) (int, error) {
	ri := c.dynamic.Resource(gvr).Namespace(ns)
	l, err := ri.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(l.Items) == 0 {
		return 0, nil
	}
	background := metav1.DeletePropagationBackground
	if err := ri.DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return len(l.Items), err
	}
	l, err = ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	return len(l.Items), nil
}

func hasFinalizer(ns *corev1.Namespace) bool {
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return true
		}
	}
	return false
}

func remainingMessage(left map[string]int) string {
	parts := make([]string, 0, len(left))
	for r, n := range left {
		parts = append(parts, fmt.Sprintf("%s has %d resource instances", r, n))
	}
	sort.Strings(parts)
	return "Some resources are remaining: " + strings.Join(parts, ", ")
}

// finalize removes the "kubernetes" finalizer; the API server then deletes
// the namespace.
func (c *Controller) finalize(ctx context.Context, ns *corev1.Namespace) error {
	ns = ns.DeepCopy()
	var keep []corev1.FinalizerName
	for _, f := range ns.Spec.Finalizers {
		if f != corev1.FinalizerKubernetes {
			keep = append(keep, f)
		}
	}
	ns.Spec.Finalizers = keep
	_, err := c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		c.log.Info("namespace emptied and finalized", "namespace", ns.Name)
	}
	return err
}

// setCondition records why a namespace is still Terminating.
func (c *Controller) setCondition(ctx context.Context, ns *corev1.Namespace, typ corev1.NamespaceConditionType, msg string) {
	reason := map[corev1.NamespaceConditionType]string{
		corev1.NamespaceContentRemaining:       "SomeResourcesRemain",
		corev1.NamespaceDeletionContentFailure: "ContentDeletionFailed",
	}[typ]
	for _, cond := range ns.Status.Conditions {
		if cond.Type == typ && cond.Status == corev1.ConditionTrue && cond.Message == msg {
			return
		}
	}
	ns = ns.DeepCopy()
	cond := corev1.NamespaceCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
	replaced := false
	for i := range ns.Status.Conditions {
		if ns.Status.Conditions[i].Type == typ {
			ns.Status.Conditions[i] = cond
			replaced = true
		}
	}
	if !replaced {
		ns.Status.Conditions = append(ns.Status.Conditions, cond)
	}
	if _, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		c.log.Warn("namespace condition", "namespace", ns.Name, "err", err)
	}
}
