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
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skiff/skiff/pkg/controller/workers"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	st := deletionState{left: map[string]int{}, finalizers: map[string]int{}, discoveryErr: discoveryErr}
	// Pods go first (upstream's OrderedNamespaceDeletion): what they use
	// (configmaps, secrets, service accounts) stays until they are gone.
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	if slices.Contains(resources, pods) {
		st.deleteAll(ctx, c, name, pods)
		if st.left[pods.GroupResource().String()] > 0 {
			c.setConditions(ctx, ns, st.conditions())
			return true, errors.Join(st.errs...)
		}
	}
	for _, gvr := range resources {
		if gvr != pods {
			st.deleteAll(ctx, c, name, gvr)
		}
	}
	c.setConditions(ctx, ns, st.conditions())
	if err := errors.Join(append(st.errs, discoveryErr)...); err != nil {
		return false, err
	}
	if len(st.left) > 0 {
		return true, nil
	}
	return false, c.finalize(ctx, ns)
}

// deletionState gathers one pass over a namespace's contents.
type deletionState struct {
	discoveryErr error
	errs         []error
	// left counts remaining objects by group-resource, finalizers the
	// finalizers they still carry.
	left       map[string]int
	finalizers map[string]int
}

func (st *deletionState) deleteAll(ctx context.Context, c *Controller, ns string, gvr schema.GroupVersionResource) {
	items, err := c.deleteAll(ctx, ns, gvr)
	if err != nil {
		st.errs = append(st.errs, fmt.Errorf("%s: %w", gvr.Resource, err))
	}
	if len(items) > 0 {
		st.left[gvr.GroupResource().String()] = len(items)
	}
	for _, it := range items {
		for _, f := range it.GetFinalizers() {
			st.finalizers[f]++
		}
	}
}

// conditions are the namespace's five deletion conditions, as upstream
// sets them: True with the problem, or False with the "all is well"
// reason.
func (st *deletionState) conditions() []corev1.NamespaceCondition {
	cond := func(typ corev1.NamespaceConditionType, bad bool, badReason, badMsg, okReason, okMsg string) corev1.NamespaceCondition {
		if bad {
			return corev1.NamespaceCondition{Type: typ, Status: corev1.ConditionTrue, Reason: badReason, Message: badMsg}
		}
		return corev1.NamespaceCondition{Type: typ, Status: corev1.ConditionFalse, Reason: okReason, Message: okMsg}
	}
	counted := func(m map[string]int, format string) string {
		parts := make([]string, 0, len(m))
		for k, n := range m {
			parts = append(parts, fmt.Sprintf(format, k, n))
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	}
	errMsgs := make([]string, 0, len(st.errs))
	for _, e := range st.errs {
		errMsgs = append(errMsgs, e.Error())
	}
	sort.Strings(errMsgs)
	return []corev1.NamespaceCondition{
		cond(corev1.NamespaceDeletionDiscoveryFailure, st.discoveryErr != nil, "DiscoveryFailed", fmt.Sprint(st.discoveryErr), "ResourcesDiscovered", "All resources successfully discovered"),
		cond(corev1.NamespaceDeletionGVParsingFailure, false, "", "", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
		cond(corev1.NamespaceDeletionContentFailure, len(st.errs) > 0, "ContentDeletionFailed",
			fmt.Sprintf("Failed to delete all resource types, %d remaining: %s", len(st.errs), strings.Join(errMsgs, ", ")),
			"ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
		cond(corev1.NamespaceContentRemaining, len(st.left) > 0, "SomeResourcesRemain",
			"Some resources are remaining: "+counted(st.left, "%s has %d resource instances"), "ContentRemoved", "All content successfully removed"),
		cond(corev1.NamespaceFinalizersRemaining, len(st.finalizers) > 0, "SomeFinalizersRemain",
			"Some content in the namespace has finalizers remaining: "+counted(st.finalizers, "%s in %d resource instances"), "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
	}
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

// deleteAll deletes a resource's objects in the namespace and returns
// those still there (terminating pods, objects with finalizers).
func (c *Controller) deleteAll(ctx context.Context, ns string, gvr schema.GroupVersionResource) ([]unstructured.Unstructured, error) {
	ri := c.dynamic.Resource(gvr).Namespace(ns)
	l, err := ri.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(l.Items) == 0 {
		return nil, nil
	}
	background := metav1.DeletePropagationBackground
	if err := ri.DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return l.Items, err
	}
	l, err = ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

func hasFinalizer(ns *corev1.Namespace) bool {
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return true
		}
	}
	return false
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

// setConditions records why a namespace is still Terminating, writing
// the status only when a condition changed.
func (c *Controller) setConditions(ctx context.Context, ns *corev1.Namespace, conds []corev1.NamespaceCondition) {
	ns = ns.DeepCopy()
	changed := false
	now := metav1.Now()
	for _, want := range conds {
		i := slices.IndexFunc(ns.Status.Conditions, func(c corev1.NamespaceCondition) bool { return c.Type == want.Type })
		switch {
		case i < 0:
			want.LastTransitionTime = now
			ns.Status.Conditions = append(ns.Status.Conditions, want)
			changed = true
		case ns.Status.Conditions[i].Status != want.Status || ns.Status.Conditions[i].Reason != want.Reason || ns.Status.Conditions[i].Message != want.Message:
			want.LastTransitionTime = now
			if ns.Status.Conditions[i].Status == want.Status {
				want.LastTransitionTime = ns.Status.Conditions[i].LastTransitionTime
			}
			ns.Status.Conditions[i] = want
			changed = true
		}
	}
	if !changed {
		return
	}
	if _, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		c.log.Warn("namespace conditions", "namespace", ns.Name, "err", err)
	}
}
