package kubelet

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// NodePortsReason is the status reason of a pod rejected because another
// pod on the node holds one of its host ports (upstream's admission runs
// the scheduler's NodePorts filter, whose name this is).
const NodePortsReason = "NodePorts"

// hostPortConflict reports whether a pod already admitted on this node
// (one the kubelet has reported on, not finished or being deleted) uses
// a host port pod asks for: the same protocol and port on overlapping
// host IPs ("" and 0.0.0.0 overlap every IP).
func (k *Kubelet) hostPortConflict(pod *corev1.Pod) bool {
	want := hostPorts(pod)
	if len(want) == 0 {
		return false
	}
	others, err := k.pods.List(labels.Everything())
	if err != nil {
		return false
	}
	for _, o := range others {
		if o.UID == pod.UID || o.Spec.NodeName != pod.Spec.NodeName || o.DeletionTimestamp != nil || o.Status.StartTime == nil ||
			o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, h := range hostPorts(o) {
			for _, w := range want {
				if h.Protocol == w.Protocol && h.HostPort == w.HostPort && (anyIP(h.HostIP) || anyIP(w.HostIP) || h.HostIP == w.HostIP) {
					return true
				}
			}
		}
	}
	return false
}

func anyIP(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// hostPorts are the pod's container ports bound on the node, protocol
// defaulted to TCP.
func hostPorts(p *corev1.Pod) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			for _, port := range c.Ports {
				if port.HostPort > 0 {
					if port.Protocol == "" {
						port.Protocol = corev1.ProtocolTCP
					}
					out = append(out, port)
				}
			}
		}
	}
	return out
}
