// Package quota computes the usage that ResourceQuotas track, as upstream's
// quota evaluators do: object counts, pod compute requests and limits, and
// service types, filtered by quota scopes.
package quota

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// legacyCounts are the object-count names quotas accepted before count/.
var legacyCounts = map[schema.GroupResource]corev1.ResourceName{
	{Resource: "pods"}:                   "", // pods counts non-terminal pods only
	{Resource: "services"}:               corev1.ResourceServices,
	{Resource: "secrets"}:                corev1.ResourceSecrets,
	{Resource: "configmaps"}:             corev1.ResourceConfigMaps,
	{Resource: "replicationcontrollers"}: corev1.ResourceReplicationControllers,
	{Resource: "resourcequotas"}:         corev1.ResourceQuotas,
	{Resource: "persistentvolumeclaims"}: corev1.ResourcePersistentVolumeClaims,
}

// CountName returns the count/<resource>[.<group>] name of gr.
func CountName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName("count/" + gr.Resource)
	}
	return corev1.ResourceName("count/" + gr.Resource + "." + gr.Group)
}

// Usage returns what obj, an object of gr, charges against quotas.
func Usage(gr schema.GroupResource, obj runtime.Object) corev1.ResourceList {
	one := resource.MustParse("1")
	out := corev1.ResourceList{CountName(gr): one}
	if name := legacyCounts[gr]; name != "" {
		out[name] = one
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		if !IsTerminal(o) {
			out[corev1.ResourcePods] = one
			addPodCompute(o, out)
		}
	case *corev1.Service:
		switch o.Spec.Type {
		case corev1.ServiceTypeNodePort:
			out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(o.Spec.Ports)), resource.DecimalSI)
		case corev1.ServiceTypeLoadBalancer:
			out[corev1.ResourceServicesLoadBalancers] = one
			out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(o.Spec.Ports)), resource.DecimalSI)
		}
	case *corev1.PersistentVolumeClaim:
		if q, ok := o.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			out[corev1.ResourceRequestsStorage] = q
		}
	}
	return out
}

// IsTerminal reports whether a pod no longer uses resources.
func IsTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// addPodCompute adds the pod's effective requests and limits: the sum over
// containers, at least the largest init container, plus overhead. cpu,
// memory and ephemeral-storage count as requests.X (and X) and limits.X;
// extended resources as requests.X only.
func addPodCompute(p *corev1.Pod, out corev1.ResourceList) {
	total := func(get func(corev1.ResourceRequirements) corev1.ResourceList) corev1.ResourceList {
		sum := corev1.ResourceList{}
		for _, c := range p.Spec.Containers {
			sum = Add(sum, get(c.Resources))
		}
		for _, c := range p.Spec.InitContainers {
			for k, v := range get(c.Resources) {
				if cur, ok := sum[k]; !ok || v.Cmp(cur) > 0 {
					sum[k] = v.DeepCopy()
				}
			}
		}
		for k, v := range p.Spec.Overhead {
			if q, ok := sum[k]; ok {
				q.Add(v)
				sum[k] = q
			}
		}
		return sum
	}
	native := func(k corev1.ResourceName) bool {
		return k == corev1.ResourceCPU || k == corev1.ResourceMemory || k == corev1.ResourceEphemeralStorage
	}
	for k, v := range total(func(r corev1.ResourceRequirements) corev1.ResourceList { return r.Requests }) {
		switch {
		case native(k):
			out[k] = v
			out[corev1.ResourceName("requests."+string(k))] = v
		case strings.Contains(string(k), "/") && !strings.Contains(string(k), "kubernetes.io/"):
			out[corev1.ResourceName("requests."+string(k))] = v
		}
	}
	for k, v := range total(func(r corev1.ResourceRequirements) corev1.ResourceList { return r.Limits }) {
		if native(k) {
			out[corev1.ResourceName("limits."+string(k))] = v
		}
	}
}

// IsBestEffort reports whether no container sets requests or limits.
func IsBestEffort(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
				return false
			}
		}
	}
	return true
}

// Matches reports whether obj falls under every scope of q. Scopes only
// select pods; other objects match a scoped quota not at all.
func Matches(q *corev1.ResourceQuota, obj runtime.Object) bool {
	scopes := q.Spec.Scopes
	if q.Spec.ScopeSelector != nil {
		for _, r := range q.Spec.ScopeSelector.MatchExpressions {
			if r.Operator == corev1.ScopeSelectorOpExists {
				scopes = append(scopes, r.ScopeName)
			}
		}
	}
	if len(scopes) == 0 {
		return true
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return false
	}
	for _, s := range scopes {
		var m bool
		switch s {
		case corev1.ResourceQuotaScopeTerminating:
			m = p.Spec.ActiveDeadlineSeconds != nil && *p.Spec.ActiveDeadlineSeconds >= 0
		case corev1.ResourceQuotaScopeNotTerminating:
			m = p.Spec.ActiveDeadlineSeconds == nil
		case corev1.ResourceQuotaScopeBestEffort:
			m = IsBestEffort(p)
		case corev1.ResourceQuotaScopeNotBestEffort:
			m = !IsBestEffort(p)
		}
		if !m {
			return false
		}
	}
	return true
}

// Filter keeps the entries of l that q limits.
func Filter(q *corev1.ResourceQuota, l corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name := range q.Spec.Hard {
		if v, ok := l[name]; ok {
			out[name] = v
		}
	}
	return out
}

// Add returns a + b.
func Add(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for k, v := range a {
		out[k] = v.DeepCopy()
	}
	for k, v := range b {
		q := out[k]
		q.Add(v)
		out[k] = q
	}
	return out
}

// Zero returns a list of q's hard names at zero.
func Zero(q *corev1.ResourceQuota) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name := range q.Spec.Hard {
		out[name] = resource.MustParse("0")
	}
	return out
}

// Format prints a list as upstream's quota errors do: "a=1,b=2", sorted.
func Format(l corev1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, fmt.Sprintf("%s=%s", k, v.String()))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
