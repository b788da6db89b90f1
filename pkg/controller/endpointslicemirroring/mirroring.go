// Package endpointslicemirroring mirrors hand-written Endpoints into
// EndpointSlices, as upstream's EndpointSlice mirroring controller does,
// so that readers of slices (the service proxy, DNS, clients) see the
// endpoints of Services without a selector too.
//
// An Endpoints object is mirrored when a Service of its name exists and
// has no selector, and the object has neither the label
// endpointslice.kubernetes.io/skip-mirror: "true" nor a leader-election
// annotation. Its subsets are repacked as upstream does; each set of
// ports and address family becomes one slice with at most 1000 endpoints
// per subset (ready for addresses, not ready for notReadyAddresses;
// invalid IPs are skipped with an event). Slices are named
// <endpoints>-<random>, carry the Endpoints' labels and annotations (less
// last-applied-configuration and last-change-trigger-time) plus
// kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by:
// endpointslicemirroring-controller.k8s.io, and are owned by the
// Endpoints. They are updated in place, and deleted when mirroring no
// longer applies.
package endpointslicemirroring

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	netutils "k8s.io/utils/net"

	"github.com/skiff/skiff/pkg/controller/endpoints"
	"github.com/skiff/skiff/pkg/controller/recorder"
	"github.com/skiff/skiff/pkg/controller/slicewriter"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

const (
	// ControllerName is the managed-by label value of the mirrored
	// slices, and the event source.
	ControllerName = "endpointslicemirroring-controller.k8s.io"
	// maxEndpointsPerSubset is upstream's default
	// --mirroring-max-endpoints-per-subset.
	maxEndpointsPerSubset = 1000
	// staleRecheck is when a sync put off for a cache behind this
	// controller's writes is tried again, should the awaited event not
	// come.
	staleRecheck = time.Second
	// leaderAnnotation marks the Endpoints old leader elections used as
	// locks (client-go's resourcelock.LeaderElectionRecordAnnotationKey).
	leaderAnnotation = "control-plane.alpha.kubernetes.io/leader"
)

// Controller is the EndpointSlice mirroring controller.
type Controller struct {
	client    kubernetes.Interface
	endpoints corelisters.EndpointsLister
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	queue     workqueue.TypedRateLimitingInterface[string]
	writer    *slicewriter.Writer
	max       int
	recorder  record.EventRecorder
	log       *slog.Logger
}

// New returns the mirroring controller over f's Endpoints, Service and
// EndpointSlice informers. Keys are the Endpoints' (and Service's)
// namespace/name.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client:    client,
		endpoints: f.Core().V1().Endpoints().Lister(),
		services:  f.Core().V1().Services().Lister(),
		slices:    f.Discovery().V1().EndpointSlices().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpointslicemirroring", Clock: clk}),
		writer: slicewriter.New(client, clk, ControllerName),
		max:    maxEndpointsPerSubset,
		log:    log,
	}
	if _, err := f.Core().V1().Endpoints().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	if _, err := f.Core().V1().Services().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	// Slice events bring their Endpoints back: hand edits and deletions
	// are undone, and a sync put off for a stale cache runs again.
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
	ep, err := c.endpoints.Endpoints(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return c.writer.DeleteAll(ctx, key, existing)
	}
	if err != nil {
		return err
	}
	if ep.Labels[discoveryv1.LabelSkipMirror] == "true" || ep.Annotations[leaderAnnotation] != "" {
		return c.writer.DeleteAll(ctx, key, existing)
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return c.writer.DeleteAll(ctx, key, existing)
	}
	if err != nil {
		return err
	}
	if svc.Spec.Selector != nil {
		// The EndpointSlice controller keeps this Service's slices.
		return c.writer.DeleteAll(ctx, key, existing)
	}
	if c.writer.Stale(key, existing) {
		c.queue.AddAfter(key, staleRecheck)
		return nil
	}
	p, skipped := reconcile(ep, existing, c.max)
	if skipped.invalid > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, "InvalidIPAddress",
			"Skipped %d invalid IP addresses when mirroring to EndpointSlices", skipped.invalid)
	}
	if skipped.overMax > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, "TooManyAddressesToMirror",
			"A max of %d addresses can be mirrored to EndpointSlices per Endpoints subset. %d addresses were skipped",
			c.max, skipped.overMax)
	}
	if err := c.writer.Apply(ctx, key, ns, ep.DeletionTimestamp == nil, p); err != nil {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices",
			"Error updating Endpoint Slices for Endpoints %s: %v", key, err)
		return err
	}
	return nil
}

// skipped counts addresses left out of the mirror.
type skipped struct{ invalid, overMax int }

// group is the endpoints of one address family and set of ports.
type group struct {
	at        discoveryv1.AddressType
	ports     []discoveryv1.EndpointPort
	endpoints []discoveryv1.Endpoint
}

// reconcile plans the writes mirroring ep, given the slices mirroring it
// now. Each group's slice is the first existing slice of its kind by
// name, updated only when it differs; other slices are deleted.
func reconcile(ep *corev1.Endpoints, existing []*discoveryv1.EndpointSlice, max int) (slicewriter.Plan, skipped) {
	groups, sk := desired(ep, max)
	existing = slices.Clone(existing)
	slices.SortFunc(existing, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	byKey := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := groupKey(s.AddressType, s.Ports)
		byKey[k] = append(byKey[k], s)
	}
	var p slicewriter.Plan
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		want := newSlice(ep, g)
		have := byKey[k]
		if len(have) == 0 {
			p.Create = append(p.Create, want)
			continue
		}
		cur := have[0]
		p.Delete = append(p.Delete, have[1:]...)
		if !sameMirror(cur, want) {
			upd := cur.DeepCopy()
			upd.Labels, upd.Annotations, upd.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
			upd.Ports, upd.Endpoints = want.Ports, want.Endpoints
			p.Update = append(p.Update, upd)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		if groups[k] == nil {
			p.Delete = append(p.Delete, byKey[k]...)
		}
	}
	return p, sk
}

// desired groups ep's addresses by address family and ports.
func desired(ep *corev1.Endpoints, max int) (map[string]*group, skipped) {
	var sk skipped
	groups := map[string]*group{}
	for _, ss := range endpoints.Repack(ep.Subsets) {
		ports := mirrorPorts(ss.Ports)
		added := 0
		add := func(addrs []corev1.EndpointAddress, ready bool) {
			for _, a := range addrs {
				if added >= max {
					sk.overMax++
					continue
				}
				e, at, ok := mirrorAddress(a, ready)
				if !ok {
					sk.invalid++
					continue
				}
				added++
				k := groupKey(at, ports)
				g := groups[k]
				if g == nil {
					g = &group{at: at, ports: ports}
					groups[k] = g
				}
				g.endpoints = append(g.endpoints, e)
			}
		}
		add(ss.Addresses, true)
		add(ss.NotReadyAddresses, false)
	}
	return groups, sk
}

// mirrorAddress is an Endpoints address as a slice endpoint, with the
// IP normalised; ok is false for an address that is not an IP.
func mirrorAddress(a corev1.EndpointAddress, ready bool) (discoveryv1.Endpoint, discoveryv1.AddressType, bool) {
	ip := netutils.ParseIPSloppy(a.IP)
	if ip == nil {
		return discoveryv1.Endpoint{}, "", false
	}
	at := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		at = discoveryv1.AddressTypeIPv6
	}
	e := discoveryv1.Endpoint{
		Addresses:  []string{ip.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		NodeName:   a.NodeName,
		TargetRef:  a.TargetRef,
	}
	if a.Hostname != "" {
		e.Hostname = &a.Hostname
	}
	return e, at, true
}

func mirrorPorts(in []corev1.EndpointPort) []discoveryv1.EndpointPort {
	out := make([]discoveryv1.EndpointPort, 0, len(in))
	for _, p := range in {
		out = append(out, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.Port, Protocol: &p.Protocol, AppProtocol: p.AppProtocol})
	}
	return out
}

// groupKey identifies a slice by address type and ports, in any order.
func groupKey(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort) string {
	keys := make([]string, 0, len(ports))
	for _, p := range ports {
		var b strings.Builder
		if p.Name != nil {
			b.WriteString(*p.Name)
		}
		b.WriteByte('/')
		if p.Port != nil {
			b.WriteString(strconv.Itoa(int(*p.Port)))
		}
		b.WriteByte('/')
		if p.Protocol != nil {
			b.WriteString(string(*p.Protocol))
		}
		if p.AppProtocol != nil {
			b.WriteString("=" + *p.AppProtocol)
		}
		keys = append(keys, b.String())
	}
	slices.Sort(keys)
	return string(at) + "|" + strings.Join(keys, ",")
}

// newSlice is the slice mirroring one group of ep.
func newSlice(ep *corev1.Endpoints, g *group) *discoveryv1.EndpointSlice {
	lbls := maps.Clone(ep.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[discoveryv1.LabelServiceName] = ep.Name
	lbls[discoveryv1.LabelManagedBy] = ControllerName
	annotations := maps.Clone(ep.Annotations)
	delete(annotations, corev1.EndpointsLastChangeTriggerTime)
	delete(annotations, corev1.LastAppliedConfigAnnotation)
	if len(annotations) == 0 {
		annotations = nil
	}
	prefix := ep.Name + "-"
	if len(prefix) > 253-5 {
		prefix = ep.Name[:253-5]
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    prefix,
			Namespace:       ep.Namespace,
			Labels:          lbls,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ep, corev1.SchemeGroupVersion.WithKind("Endpoints"))},
		},
		AddressType: g.at,
		Ports:       g.ports,
		Endpoints:   g.endpoints,
	}
}

// sameMirror reports whether have already mirrors what want says, looking
// only at what mirroring writes.
func sameMirror(have, want *discoveryv1.EndpointSlice) bool {
	if !maps.Equal(have.Labels, want.Labels) || !maps.Equal(have.Annotations, want.Annotations) ||
		!apiequality.Semantic.DeepEqual(have.OwnerReferences, want.OwnerReferences) ||
		!apiequality.Semantic.DeepEqual(have.Ports, want.Ports) || len(have.Endpoints) != len(want.Endpoints) {
		return false
	}
	for i := range want.Endpoints {
		h, w := &have.Endpoints[i], &want.Endpoints[i]
		if !slices.Equal(h.Addresses, w.Addresses) || !apiequality.Semantic.DeepEqual(h.Conditions.Ready, w.Conditions.Ready) ||
			!apiequality.Semantic.DeepEqual(h.Hostname, w.Hostname) || !apiequality.Semantic.DeepEqual(h.NodeName, w.NodeName) ||
			!apiequality.Semantic.DeepEqual(h.TargetRef, w.TargetRef) {
			return false
		}
	}
	return true
}
