// Package podendpoint decides what a Pod contributes to the endpoints of
// the Services that select it, the same way for the Endpoints and the
// EndpointSlice controllers (as upstream's shared endpoint helpers do):
// whether the pod is listed at all, its addresses, whether it is ready,
// its DNS hostname, the port each service port maps to on it, and which
// Services a pod event concerns.
package podendpoint

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
)

// FromPods reports whether the Service's endpoints are computed from the
// pods its selector matches. Services without a selector (their endpoints
// are written by hand) and ExternalName services are not. An empty
// selector counts as none: through the API it cannot be told from an
// absent one.
func FromPods(svc *corev1.Service) bool {
	return len(svc.Spec.Selector) > 0 && svc.Spec.Type != corev1.ServiceTypeExternalName
}

// Selects reports whether the Service's selector matches the labels.
func Selects(svc *corev1.Service, podLabels labels.Set) bool {
	return FromPods(svc) && labels.SelectorFromValidatedSet(svc.Spec.Selector).Matches(podLabels)
}

// Headless reports whether the Service has no cluster IP (clusterIP None,
// or none allocated); its endpoints carry the service.kubernetes.io/headless
// label.
func Headless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone
}

// Included reports whether the pod is listed at all: it has an IP and has
// not finished. Terminating pods (deletionTimestamp set) are listed only
// if includeTerminating.
func Included(p *corev1.Pod, includeTerminating bool) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if len(IPs(p)) == 0 {
		return false
	}
	return includeTerminating || p.DeletionTimestamp == nil
}

// Ready reports whether the pod's Ready condition is True.
func Ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// IPs returns the pod's addresses: status.podIPs, or status.podIP when a
// writer set only that.
func IPs(p *corev1.Pod) []string {
	if len(p.Status.PodIPs) > 0 {
		out := make([]string, 0, len(p.Status.PodIPs))
		for _, ip := range p.Status.PodIPs {
			if ip.IP != "" {
				out = append(out, ip.IP)
			}
		}
		return out
	}
	if p.Status.PodIP != "" {
		return []string{p.Status.PodIP}
	}
	return nil
}

// Hostname is the hostname the pod's endpoint carries for the Service: the
// pod's spec.hostname when its spec.subdomain names the Service (so DNS
// can answer <hostname>.<service>), otherwise "".
func Hostname(p *corev1.Pod, svc *corev1.Service) string {
	if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name && p.Namespace == svc.Namespace {
		return p.Spec.Hostname
	}
	return ""
}

// Protocol is the service port's protocol, TCP when unset (as the API
// server defaults it).
func Protocol(sp *corev1.ServicePort) corev1.Protocol {
	if sp.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return sp.Protocol
}

// Port returns the pod port a service port sends to: a numeric targetPort
// as is (the service port when unset), a named one looked up among the
// pod's container ports of the same protocol, sidecars' included. ok is
// false when the pod has no such named port.
func Port(p *corev1.Pod, sp *corev1.ServicePort) (port int32, ok bool) {
	if sp.TargetPort.Type == intstr.Int {
		if sp.TargetPort.IntVal == 0 {
			return sp.Port, true
		}
		return sp.TargetPort.IntVal, true
	}
	name, proto := sp.TargetPort.StrVal, Protocol(sp)
	find := func(containers []corev1.Container, sidecarsOnly bool) (int32, bool) {
		for _, c := range containers {
			if sidecarsOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, cp := range c.Ports {
				cpProto := cp.Protocol
				if cpProto == "" {
					cpProto = corev1.ProtocolTCP
				}
				if cp.Name == name && cpProto == proto {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if port, ok := find(p.Spec.Containers, false); ok {
		return port, true
	}
	return find(p.Spec.InitContainers, true)
}

// changed reports whether an update can change the pod's endpoints or the
// Services that select it.
func changed(old, cur *corev1.Pod) bool {
	if old.ResourceVersion != "" && old.ResourceVersion == cur.ResourceVersion {
		return false // an informer resync: the Services resync themselves
	}
	return !labels.Equals(old.Labels, cur.Labels) ||
		old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		Ready(old) != Ready(cur) ||
		Included(old, true) != Included(cur, true) ||
		!slices.Equal(IPs(old), IPs(cur))
}

// ServiceKeys returns the namespace/name keys of the Services in the
// namespace whose selector matches the labels.
func ServiceKeys(services corelisters.ServiceLister, namespace string, podLabels labels.Set) []string {
	// The lister indexes by namespace: only this namespace's Services are
	// looked at.
	l, err := services.Services(namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var keys []string
	for _, svc := range l {
		if Selects(svc, podLabels) {
			keys = append(keys, svc.Namespace+"/"+svc.Name)
		}
	}
	return keys
}

// Handler returns a Pod event handler that passes enqueue the key of every
// Service whose endpoints the event may change: those selecting the pod
// before or after it.
func Handler(services corelisters.ServiceLister, enqueue func(key string)) cache.ResourceEventHandler {
	forPod := func(p *corev1.Pod) {
		for _, k := range ServiceKeys(services, p.Namespace, p.Labels) {
			enqueue(k)
		}
	}
	return typedhandler.Funcs(forPod,
		func(old, cur *corev1.Pod) {
			if !changed(old, cur) {
				return
			}
			forPod(cur)
			if !labels.Equals(old.Labels, cur.Labels) {
				forPod(old)
			}
		},
		forPod)
}
