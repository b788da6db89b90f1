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
	"log/slog"
	"time"

	"github.com/skiff/skiff/pkg/controller/recorder"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"github.com/skiff/skiff/pkg/controller/slicewriter"
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
	writer      *slicewriter.Writer
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
		writer:      slicewriter.New(client, clk, ControllerName),
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
	_, err := f.Discovery().V1().EndpointSlices().Informer().AddEventHandler(c.writer.Handler(c.queue.Add))
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
	existing, err := c.writer.Managed(c.slices, ns, name)
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The garbage collector would delete them too (the Service owns
		// them); this is sooner.
		return c.writer.DeleteAll(ctx, key, existing)
	}
	if err != nil {
		return err
	}
	if !podendpoint.FromPods(svc) {
		// Unlike upstream (kubernetes#118376), slices whose Service no
		// longer selects pods do not linger with the last pods in them.
		return c.writer.DeleteAll(ctx, key, existing)
	}
	if c.writer.Stale(key, existing) {
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
	// A Service being deleted gets no new slices: the garbage collector
	// is deleting them.
	if err := c.writer.Apply(ctx, key, ns, svc.DeletionTimestamp == nil, slicewriter.Plan{Create: p.create, Update: p.update, Delete: p.delete}); err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices",
			"Error updating Endpoint Slices for Service %s: %v", key, err)
		return err
	}
	return nil
}
