package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/kubelet/sysctl"
)

// podDir holds a pod's volumes and termination message files.
func (k *Kubelet) podDir(uid types.UID) string {
	return filepath.Join(k.cfg.RootDir, "pods", string(uid))
}

// logDir is where a pod's container logs go, named as upstream names
// /var/log/pods/<namespace>_<name>_<uid>.
func (k *Kubelet) logDir(pod *corev1.Pod) string {
	return filepath.Join(k.cfg.RootDir, "logs", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

// hostname is the pod's hostname: spec.hostname, else its name, cut to a
// DNS label.
func hostname(pod *corev1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// dnsConfig is the pod's resolv.conf as its dnsPolicy says (nil: the
// node's own).
func (k *Kubelet) dnsConfig(pod *corev1.Pod) *runtimeapi.DNSConfig {
	policy := pod.Spec.DNSPolicy
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault
	}
	if policy == corev1.DNSClusterFirstWithHostNet {
		policy = corev1.DNSClusterFirst
	}
	var cfg *runtimeapi.DNSConfig
	switch policy {
	case corev1.DNSClusterFirst:
		if k.cfg.ClusterDNS == "" {
			break
		}
		d := k.cfg.ClusterDomain
		cfg = &runtimeapi.DNSConfig{
			Servers:  []string{k.cfg.ClusterDNS},
			Searches: append([]string{pod.Namespace + ".svc." + d, "svc." + d, d}, hostSearches()...),
			Options:  []string{"ndots:5"},
		}
	case corev1.DNSNone:
		cfg = &runtimeapi.DNSConfig{}
	}
	if extra := pod.Spec.DNSConfig; extra != nil {
		if cfg == nil {
			cfg = &runtimeapi.DNSConfig{}
		}
		cfg.Servers = append(cfg.Servers, extra.Nameservers...)
		cfg.Searches = append(cfg.Searches, extra.Searches...)
		for _, o := range extra.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = append(cfg.Options, opt)
		}
	}
	return cfg
}

// hostSearches are the node's resolv.conf search domains.
func hostSearches() []string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "search" {
			return f[1:]
		}
	}
	return nil
}

func (k *Kubelet) sandboxConfig(pod *corev1.Pod, attempt uint32) *runtimeapi.PodSandboxConfig {
	network := runtimeapi.NamespaceMode_POD
	if pod.Spec.HostNetwork {
		network = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		Hostname:     hostname(pod),
		LogDirectory: k.logDir(pod),
		DnsConfig:    k.dnsConfig(pod),
		Labels:       podLabels(pod),
		Annotations:  pod.Annotations,
		PortMappings: portMappings(pod),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: network},
			},
			Sysctls: sysctl.Sysctls(pod),
		},
	}
}

func (k *Kubelet) runSandbox(ctx context.Context, pod *corev1.Pod, attempt uint32) (string, error) {
	return k.cfg.Runtime.RunPodSandbox(ctx, k.sandboxConfig(pod, attempt), "")
}

// portMappings are the pod's host ports for the runtime to publish, as
// the kubelet hands them over the CRI (host-network pods bind them
// themselves).
func portMappings(pod *corev1.Pod) []*runtimeapi.PortMapping {
	if pod.Spec.HostNetwork {
		return nil
	}
	var out []*runtimeapi.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			proto := runtimeapi.Protocol_TCP
			switch p.Protocol {
			case corev1.ProtocolUDP:
				proto = runtimeapi.Protocol_UDP
			case corev1.ProtocolSCTP:
				proto = runtimeapi.Protocol_SCTP
			}
			out = append(out, &runtimeapi.PortMapping{Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
		}
	}
	return out
}
