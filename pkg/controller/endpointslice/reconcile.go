package endpointslice

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/net"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/podendpoint"
)

// plan is the writes that bring a Service's slices to what its pods say.
type plan struct {
	create, update, delete []*discoveryv1.EndpointSlice
}

func (p *plan) add(q plan) {
	p.create = append(p.create, q.create...)
	p.update = append(p.update, q.update...)
	p.delete = append(p.delete, q.delete...)
}

func (p plan) empty() bool { return len(p.create)+len(p.update)+len(p.delete) == 0 }

// reconcile plans the writes for a Service with a selector, given the
// pods it selects and the slices this controller manages for it. It is
// upstream's reconciler: per address type, endpoints are grouped by the
// ports they resolve to; existing slices keep the endpoints still wanted
// (updated in place), lose the others, and are deleted when empty;
// leftovers fill the slices already being updated (fullest first), then
// the unchanged slice they fit best, then new slices of at most
// maxPerSlice; a creation takes over a slice about to be deleted instead;
// a Service with no endpoints of a type keeps one empty placeholder slice.
// Equal inputs give equal plans.
func reconcile(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, maxPerSlice int) plan {
	existing = slices.Clone(existing)
	slices.SortFunc(existing, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	var p plan
	types := addressTypes(svc)
	byType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if !slices.Contains(types, s.AddressType) {
			p.delete = append(p.delete, s)
			continue
		}
		byType[s.AddressType] = append(byType[s.AddressType], s)
	}
	for _, at := range types {
		p.add(reconcileType(svc, pods, byType[at], at, maxPerSlice))
	}
	return p
}

// desiredGroup is the endpoints that resolve to one set of ports.
type desiredGroup struct {
	ports     []discoveryv1.EndpointPort
	endpoints map[string]*discoveryv1.Endpoint // by endpointKey
}

func reconcileType(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, at discoveryv1.AddressType, maxPerSlice int) plan {
	var p plan
	existingByPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if ownedBy(s, svc) {
			k := portsKey(s.Ports)
			existingByPorts[k] = append(existingByPorts[k], s)
		} else {
			// Left by an earlier Service of the same name.
			p.delete = append(p.delete, s)
		}
	}
	desired := map[string]*desiredGroup{}
	for _, pod := range pods {
		// Terminating pods stay, marked terminating, so that proxies can
		// drain them.
		if !podendpoint.Included(pod, true) {
			continue
		}
		ports := endpointPorts(svc, pod)
		k := portsKey(ports)
		g := desired[k]
		if g == nil {
			g = &desiredGroup{ports: ports, endpoints: map[string]*discoveryv1.Endpoint{}}
			desired[k] = g
		}
		if ep := podToEndpoint(pod, svc, at); len(ep.Addresses) > 0 {
			g.endpoints[endpointKey(ep)] = ep
		}
	}
	for _, k := range slices.Sorted(maps.Keys(desired)) {
		p.add(reconcilePorts(svc, existingByPorts[k], desired[k], at, maxPerSlice))
	}
	for _, k := range slices.Sorted(maps.Keys(existingByPorts)) {
		if desired[k] == nil {
			p.delete = append(p.delete, existingByPorts[k]...)
		}
	}
	// A Service with nothing to list keeps one empty slice, so that
	// readers can tell "no endpoints" from "not processed yet".
	if len(existing) == len(p.delete) && len(p.create) == 0 {
		placeholder := newSlice(svc, at, []discoveryv1.EndpointPort{})
		if len(p.delete) == 1 && isPlaceholder(p.delete[0], placeholder) {
			p.delete = nil
		} else {
			p.create = append(p.create, placeholder)
		}
	}
	return reuseDeleted(svc, p)
}

// reconcilePorts plans the slices of one set of ports.
func reconcilePorts(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, g *desiredGroup, at discoveryv1.AddressType, maxPerSlice int) plan {
	var p plan
	labels := sliceLabels(svc)
	var changed, unchanged []*discoveryv1.EndpointSlice
	for _, s := range existing {
		var kept []discoveryv1.Endpoint
		updated := false
		for i := range s.Endpoints {
			k := endpointKey(&s.Endpoints[i])
			want, ok := g.endpoints[k]
			if !ok {
				continue // no longer wanted, or already in another slice
			}
			kept = append(kept, *want)
			updated = updated || !endpointEqual(want, &s.Endpoints[i])
			delete(g.endpoints, k)
		}
		labelsChanged := !apiequality.Semantic.DeepEqual(s.Labels, labels)
		switch {
		case len(kept) == 0 && len(s.Endpoints) > 0:
			p.delete = append(p.delete, s)
		case updated || len(kept) != len(s.Endpoints) || labelsChanged:
			s = s.DeepCopy()
			s.Endpoints, s.Labels = kept, labels
			changed = append(changed, s)
		default:
			unchanged = append(unchanged, s)
		}
	}

	// What is left goes in sorted order, so that equal inputs give equal
	// slices.
	left := slices.Sorted(maps.Keys(g.endpoints))
	fill := func(s *discoveryv1.EndpointSlice) {
		for len(left) > 0 && len(s.Endpoints) < maxPerSlice {
			s.Endpoints = append(s.Endpoints, *g.endpoints[left[0]])
			left = left[1:]
		}
	}
	// Slices being written anyway take what they can, fullest first.
	slices.SortStableFunc(changed, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(len(b.Endpoints), len(a.Endpoints)) })
	for _, s := range changed {
		fill(s)
	}
	// Then the unchanged slice that the rest fits best, then new slices.
	for len(left) > 0 {
		var s *discoveryv1.EndpointSlice
		if len(left) < maxPerSlice {
			if i := sliceToFill(unchanged, len(left), maxPerSlice); i >= 0 {
				s = unchanged[i].DeepCopy()
				unchanged = slices.Delete(unchanged, i, i+1)
				changed = append(changed, s)
			}
		}
		if s == nil {
			s = newSlice(svc, at, g.ports)
			p.create = append(p.create, s)
		}
		fill(s)
	}
	p.update = append(p.update, changed...)
	return p
}

// sliceToFill returns the index of the slice that n more endpoints bring
// closest to full without overflowing, -1 if none has room.
func sliceToFill(candidates []*discoveryv1.EndpointSlice, n, maxPerSlice int) int {
	best, bestRoom := -1, maxPerSlice
	for i, s := range candidates {
		if room := maxPerSlice - len(s.Endpoints) - n; room >= 0 && room < bestRoom {
			best, bestRoom = i, room
		}
	}
	return best
}

// reuseDeleted turns creations into updates of slices that would be
// deleted (same address type, same Service), so that a change of ports
// rewrites slices instead of replacing them.
func reuseDeleted(svc *corev1.Service, p plan) plan {
	for i := 0; i < len(p.delete) && len(p.create) > 0; {
		old := p.delete[i]
		n := p.create[len(p.create)-1]
		if old.AddressType != n.AddressType || !ownedBy(old, svc) {
			i++
			continue
		}
		s := old.DeepCopy()
		s.Labels, s.Ports, s.Endpoints = n.Labels, n.Ports, n.Endpoints
		p.update = append(p.update, s)
		p.create = p.create[:len(p.create)-1]
		p.delete = slices.Delete(p.delete, i, i+1)
	}
	return p
}

// addressTypes are the slice address types of the Service's IP families;
// a Service that names none (written before families existed) gets the
// family of its cluster IP, or both if headless.
func addressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	switch {
	case len(out) > 0:
	case !podendpoint.Headless(svc) && net.IsIPv6String(svc.Spec.ClusterIP):
		out = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
	case !podendpoint.Headless(svc):
		out = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	default:
		out = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// endpointPorts maps the Service's ports to the pod's; ports the pod lacks
// (named targetPorts) are left out.
func endpointPorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		port, ok := podendpoint.Port(pod, sp)
		if !ok {
			continue
		}
		out = append(out, discoveryv1.EndpointPort{
			Name: ptr.To(sp.Name), Port: ptr.To(port), Protocol: ptr.To(podendpoint.Protocol(sp)), AppProtocol: sp.AppProtocol,
		})
	}
	return out
}

// podToEndpoint is the pod's endpoint for addresses of type at: serving
// when the pod is ready, ready when serving and not terminating (or when
// the Service publishes not-ready addresses).
func podToEndpoint(pod *corev1.Pod, svc *corev1.Service, at discoveryv1.AddressType) *discoveryv1.Endpoint {
	serving := podendpoint.Ready(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := &discoveryv1.Endpoint{
		Addresses:  []string{},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	for _, s := range podendpoint.IPs(pod) {
		ip := net.ParseIPSloppy(s)
		if ip == nil {
			continue
		}
		if net.IsIPv6(ip) == (at == discoveryv1.AddressTypeIPv6) {
			ep.Addresses = append(ep.Addresses, ip.String())
		}
	}
	if pod.Spec.NodeName != "" {
		ep.NodeName = ptr.To(pod.Spec.NodeName)
	}
	if h := podendpoint.Hostname(pod, svc); h != "" {
		ep.Hostname = &h
	}
	return ep
}

// endpointKey identifies an endpoint across syncs: its addresses, hostname
// and pod. Anything else about it is updated in place.
func endpointKey(ep *discoveryv1.Endpoint) string {
	var b strings.Builder
	b.WriteString(strings.Join(ep.Addresses, ","))
	b.WriteString("|" + ptr.Deref(ep.Hostname, ""))
	if r := ep.TargetRef; r != nil {
		b.WriteString("|" + r.Namespace + "/" + r.Name)
	}
	return b.String()
}

// endpointEqual compares endpoints, ignoring the pod's resourceVersion in
// targetRef (other writers may set it).
func endpointEqual(want, have *discoveryv1.Endpoint) bool {
	h := *have
	if h.TargetRef != nil && h.TargetRef.ResourceVersion != "" {
		ref := *h.TargetRef
		ref.ResourceVersion = ""
		h.TargetRef = &ref
	}
	return apiequality.Semantic.DeepEqual(*want, h)
}

// portsKey identifies a set of ports, whatever their order, with the
// server's defaults applied (empty name, TCP).
func portsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, len(ports))
	for i, p := range ports {
		port := "*"
		if p.Port != nil {
			port = strconv.Itoa(int(*p.Port))
		}
		app := "-"
		if p.AppProtocol != nil {
			app = "=" + *p.AppProtocol
		}
		keys[i] = ptr.Deref(p.Name, "") + "/" + port + "/" + string(ptr.Deref(p.Protocol, corev1.ProtocolTCP)) + "/" + app
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// sliceLabels are a slice's labels: the Service's, with the reserved ones
// set by the controller.
func sliceLabels(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		switch k {
		case discoveryv1.LabelServiceName, discoveryv1.LabelManagedBy, corev1.IsHeadlessService:
		default:
			out[k] = v
		}
	}
	if podendpoint.Headless(svc) {
		out[corev1.IsHeadlessService] = ""
	}
	out[discoveryv1.LabelServiceName] = svc.Name
	out[discoveryv1.LabelManagedBy] = ControllerName
	return out
}

// newSlice returns an empty slice for the Service, named by the server.
func newSlice(svc *corev1.Service, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-",
			Namespace:       svc.Namespace,
			Labels:          sliceLabels(svc),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
}

// ownedBy reports whether the Service (this one, not an earlier one of the
// same name) owns the slice.
func ownedBy(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}

// isPlaceholder reports whether s already is the placeholder slice.
func isPlaceholder(s, placeholder *discoveryv1.EndpointSlice) bool {
	return s.AddressType == placeholder.AddressType && len(s.Endpoints) == 0 && len(s.Ports) == 0 &&
		apiequality.Semantic.DeepEqual(s.Labels, placeholder.Labels)
}
