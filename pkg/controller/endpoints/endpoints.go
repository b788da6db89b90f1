// Package endpoints keeps, for every Service with a selector, the core/v1
// Endpoints object of the same name, as upstream's endpoint controller
// does. Its subsets list the pods the selector matches that have an IP and
// have not finished: ready pods under addresses, the others under
// notReadyAddresses (all under addresses with publishNotReadyAddresses),
// pods being deleted left out (kept, with publishNotReadyAddresses). Each
// address names its pod (targetRef), node and, when the pod's subdomain is
// the Service, its hostname. Each service port maps to the pod's port
// (named targetPorts resolved per pod; a pod without the name is left out
// of that port), and ports served by the same addresses share a subset.
// At most 1000 addresses are kept (endpoints.kubernetes.io/over-capacity:
// truncated).
//
// The Endpoints carry the Service's labels, service.kubernetes.io/headless
// for headless Services and endpoints.kubernetes.io/managed-by:
// endpoint-controller. Endpoints of Services without a selector (written
// by hand) and of ExternalName Services are left alone; when a Service
// goes, its Endpoints go too if this controller wrote them. Nothing is
// written unless something changed.
package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/skiff/skiff/pkg/controller/recorder"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/podendpoint"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

const (
	// ControllerName is the event source and the managed-by label value.
	ControllerName = "endpoint-controller"
	// LabelManagedBy marks the Endpoints this controller wrote (upstream's
	// label since 1.33), so that only those are deleted with their
	// Service.
	LabelManagedBy = "endpoints.kubernetes.io/managed-by"
	// truncated is the over-capacity annotation's value.
	truncated = "truncated"
)

// Controller is the Endpoints controller.
type Controller struct {
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	endpoints corelisters.EndpointsLister
	queue     workqueue.TypedRateLimitingInterface[string]
	recorder  record.EventRecorder
	log       *slog.Logger

	mu sync.Mutex
	// replaced holds, per key, the resourceVersion of the Endpoints our
	// last update replaced. While the cache still shows it, the cache is
	// behind our own write, and the write's event will bring the key back.
	replaced map[string]string
}

// New returns the Endpoints controller over f's Service, Pod and Endpoints
// informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client:    client,
		services:  f.Core().V1().Services().Lister(),
		pods:      f.Core().V1().Pods().Lister(),
		endpoints: f.Core().V1().Endpoints().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoints", Clock: clk}),
		log:      log,
		replaced: map[string]string{},
	}
	if _, err := f.Core().V1().Services().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	if _, err := f.Core().V1().Pods().Informer().AddEventHandler(podendpoint.Handler(c.services, c.queue.Add)); err != nil {
		return nil, err
	}
	// Endpoints events bring their Service back: a hand deletion or edit
	// is undone, and at start every Endpoints whose Service went while
	// the controller was away is found.
	h := typedhandler.Keys(c.queue.Add)
	enqueue := h.DeleteFunc
	h.DeleteFunc = func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.mu.Lock()
			delete(c.replaced, key)
			c.mu.Unlock()
		}
		enqueue(obj)
	}
	_, err := f.Core().V1().Endpoints().Informer().AddEventHandler(h)
	return c, err
}

// Run starts the event recorder and n workers and runs until ctx ends.
// The informers must have synced.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, ControllerName)
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return c.deleteOrphan(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	if !podendpoint.FromPods(svc) {
		return nil
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	cur, err := c.endpoints.Endpoints(ns).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return err
	case c.cacheBehind(key, cur):
		return nil
	}
	want := desired(svc, pods, cur)
	if cur != nil && apiequality.Semantic.DeepEqual(cur.Subsets, want.Subsets) &&
		apiequality.Semantic.DeepEqual(cur.Labels, want.Labels) && apiequality.Semantic.DeepEqual(cur.Annotations, want.Annotations) {
		return nil
	}
	if cur == nil {
		_, err = c.client.CoreV1().Endpoints(ns).Create(ctx, want, metav1.CreateOptions{})
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // creations fail until the namespace is gone
		}
	} else {
		var got *corev1.Endpoints
		got, err = c.client.CoreV1().Endpoints(ns).Update(ctx, want, metav1.UpdateOptions{})
		if err == nil && got.ResourceVersion != cur.ResourceVersion {
			c.mu.Lock()
			c.replaced[key] = cur.ResourceVersion
			c.mu.Unlock()
		}
	}
	if err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpoint", "Failed to update endpoint %s/%s: %v", ns, name, err)
		return fmt.Errorf("write endpoints %s: %w", key, err)
	}
	return nil
}

// cacheBehind reports whether the cached Endpoints are the ones our last
// update replaced.
func (c *Controller) cacheBehind(key string, cur *corev1.Endpoints) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rv, ok := c.replaced[key]
	if ok && rv != cur.ResourceVersion {
		delete(c.replaced, key) // caught up
		return false
	}
	return ok
}

// desired returns the Endpoints the Service should have, built on cur
// (nil: none yet) so that what this controller does not own is kept.
func desired(svc *corev1.Service, pods []*corev1.Pod, cur *corev1.Endpoints) *corev1.Endpoints {
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace}}
	if cur != nil {
		ep = cur.DeepCopy()
	}
	var over bool
	ep.Subsets, over = truncate(subsets(svc, pods))

	ep.Labels = maps.Clone(svc.Labels)
	if ep.Labels == nil {
		ep.Labels = map[string]string{}
	}
	ep.Labels[LabelManagedBy] = ControllerName
	if podendpoint.Headless(svc) {
		ep.Labels[corev1.IsHeadlessService] = ""
	} else {
		delete(ep.Labels, corev1.IsHeadlessService)
	}

	if over {
		if ep.Annotations == nil {
			ep.Annotations = map[string]string{}
		}
		ep.Annotations[corev1.EndpointsOverCapacity] = truncated
	} else {
		delete(ep.Annotations, corev1.EndpointsOverCapacity)
	}
	return ep
}

// deleteOrphan deletes the Endpoints of a Service that is gone if this
// controller wrote them; Endpoints written by hand are left alone.
func (c *Controller) deleteOrphan(ctx context.Context, ns, name string) error {
	ep, err := c.endpoints.Endpoints(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ep.Labels[LabelManagedBy] != ControllerName || ep.DeletionTimestamp != nil {
		return nil
	}
	// The UID precondition spares Endpoints made anew since the cache
	// saw these.
	var opts metav1.DeleteOptions
	if ep.UID != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &ep.UID}
	}
	err = c.client.CoreV1().Endpoints(ns).Delete(ctx, name, opts)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete endpoints %s/%s: %w", ns, name, err)
	}
	return nil
}
