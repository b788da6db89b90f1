// Package endpointslice keeps the discovery.k8s.io/v1 EndpointSlices of
// every Service with a selector, as upstream's EndpointSlice controller
// does. The slices list the pods the selector matches that have an IP and
// have not finished, terminating ones included: each endpoint has the
// pod's addresses of the slice's type, its node, its pod (targetRef), its
// hostname when the pod's subdomain is the Service, and the conditions
// ready (serving and not terminating, or always with
// publishNotReadyAddresses), serving (the pod is Ready) and terminating.
// Endpoints are grouped by the ports the Service's ports resolve to on
// their pod (named targetPorts differ per pod), at most 100 to a slice.
//
// Slices are named <service>-<random>, labelled
// kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by:
// endpointslice-controller.k8s.io (slices managed by others are ignored)
// and owned by their Service. A sync changes existing slices in place
// where it can (see reconcile) and writes nothing when nothing changed.
// When the Service goes, loses its selector or becomes ExternalName, its
// slices are deleted.
package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/skiff/skiff/pkg/controller/recorder"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/podendpoint"
	"github.com/skiff/skiff/pkg/controller/slicetracker"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

const (
	// ControllerName is the managed-by label value of the slices this
	// controller owns, and its event source.
	ControllerName = "endpointslice-controller.k8s.io"
	// maxEndpointsPerSlice is upstream's default --max-endpoints-per-slice.
	maxEndpointsPerSlice = 100
	// staleRecheck is when a sync put off for a cache behind this
	// controller's writes is tried again, should the awaited event not
	// come.
	staleRecheck = time.Second
)

// Controller is the EndpointSlice controller.
type Controller struct {
	client      kubernetes.Interface
	services    corelisters.ServiceLister
	pods        corelisters.PodLister
	slices      discoverylisters.EndpointSliceLister
	queue       workqueue.TypedRateLimitingInterface[string]
	tracker     *slicetracker.Tracker
	maxPerSlice int
	recorder    record.EventRecorder
	log         *slog.Logger
}

// New returns the EndpointSlice controller over f's Service, Pod and
// EndpointSlice informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client:   client,
		services: f.Core().V1().Services().Lister(),
		pods:     f.Core().V1().Pods().Lister(),
		slices:   f.Discovery().V1().EndpointSlices().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpointslice", Clock: clk}),
		tracker:     slicetracker.New(clk),
		maxPerSlice: maxEndpointsPerSlice,
		log:         log,
	}
	if _, err := f.Core().V1().Services().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	if _, err := f.Core().V1().Pods().Informer().AddEventHandler(podendpoint.Handler(c.services, c.queue.Add)); err != nil {
		return nil, err
	}
	// Slice events bring their Service back: hand edits and deletions are
	// undone, and a sync put off for a stale cache runs again once the
	// cache shows this controller's writes. (Those writes come back too;
	// their syncs find nothing to do.)
	_, err := f.Discovery().V1().EndpointSlices().Informer().AddEventHandler(typedhandler.Funcs(
		func(s *discoveryv1.EndpointSlice) { c.enqueueSlice(s) },
		func(old, s *discoveryv1.EndpointSlice) {
			key, ok := serviceKey(s)
			if ok {
				c.queue.Add(key)
			}
			// Relabelled away from its Service: that one may miss it.
			if oldKey, oldOK := serviceKey(old); oldOK && (!ok || oldKey != key) {
				c.queue.Add(oldKey)
			}
		},
		func(s *discoveryv1.EndpointSlice) {
			if key, ok := serviceKey(s); ok {
				c.tracker.ObservedDeletion(key, s.Name)
				c.queue.Add(key)
			}
		},
	))
	return c, err
}

// serviceKey returns the key of the Service of a slice this controller
// manages.
func serviceKey(s *discoveryv1.EndpointSlice) (string, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" || s.Labels[discoveryv1.LabelManagedBy] != ControllerName {
		return "", false
	}
	return s.Namespace + "/" + name, true
}

func (c *Controller) enqueueSlice(s *discoveryv1.EndpointSlice) {
	if key, ok := serviceKey(s); ok {
		c.queue.Add(key)
	}
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
	existing, err := c.managedSlices(ns, name)
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The garbage collector would delete them too (the Service owns
		// them); this is sooner.
		return c.deleteAll(ctx, key, existing)
	}
	if err != nil {
		return err
	}
	if !podendpoint.FromPods(svc) {
		// Unlike upstream (kubernetes#118376), slices whose Service no
		// longer selects pods do not linger with the last pods in them.
		return c.deleteAll(ctx, key, existing)
	}
	if c.tracker.Stale(key, existing) {
		// The event of the write the cache is missing brings the key
		// back; the recheck covers a write that will never show.
		c.queue.AddAfter(key, staleRecheck)
		return nil
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	p := reconcile(svc, pods, existing, c.maxPerSlice)
	if p.empty() {
		return nil
	}
	if err := c.apply(ctx, key, svc, p); err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices",
			"Error updating Endpoint Slices for Service %s: %v", key, err)
		return err
	}
	return nil
}

// managedSlices lists the cached slices this controller manages for a
// Service, leaving out those already being deleted.
func (c *Controller) managedSlices(ns, name string) ([]*discoveryv1.EndpointSlice, error) {
	l, err := c.slices.EndpointSlices(ns).List(labels.SelectorFromValidatedSet(labels.Set{
		discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ControllerName,
	}))
	if err != nil {
		return nil, err
	}
	out := l[:0:0]
	for _, s := range l {
		if s.DeletionTimestamp == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// apply makes the plan's writes: creations, then updates, then deletions,
// so that endpoints moving between slices are never missing from all.
func (c *Controller) apply(ctx context.Context, key string, svc *corev1.Service, p plan) error {
	client := c.client.DiscoveryV1().EndpointSlices(svc.Namespace)
	// A Service being deleted gets no new slices: the garbage collector
	// is deleting them.
	if svc.DeletionTimestamp == nil {
		for _, s := range p.create {
			got, err := client.Create(ctx, s, metav1.CreateOptions{})
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // creations fail until the namespace is gone
			}
			if err != nil {
				return fmt.Errorf("create endpointslice for service %s: %w", key, err)
			}
			c.tracker.Wrote(key, got)
		}
	}
	for _, s := range p.update {
		got, err := client.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update endpointslice %s/%s: %w", s.Namespace, s.Name, err)
		}
		c.tracker.Wrote(key, got)
	}
	var errs []error
	for _, s := range p.delete {
		if err := c.deleteSlice(ctx, key, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteAll deletes the given slices of a Service.
func (c *Controller) deleteAll(ctx context.Context, key string, existing []*discoveryv1.EndpointSlice) error {
	var errs []error
	for _, s := range existing {
		if c.tracker.ExpectsDeletion(key, s.Name) {
			continue
		}
		if err := c.deleteSlice(ctx, key, s); err != nil {
			errs = append(errs, err)
		}
	}
	if len(existing) == 0 {
		c.tracker.Forget(key)
	}
	return errors.Join(errs...)
}

func (c *Controller) deleteSlice(ctx context.Context, key string, s *discoveryv1.EndpointSlice) error {
	var opts metav1.DeleteOptions
	if s.UID != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &s.UID}
	}
	err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete endpointslice %s/%s: %w", s.Namespace, s.Name, err)
	}
	c.tracker.Deleted(key, s.Name)
	return nil
}
