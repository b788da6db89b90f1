package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The kubelet-managed /etc/hosts, as upstream's kubelet writes it: the
// header tells users (and the conformance suite) the kubelet owns the file.
const (
	etcHostsPath                      = "/etc/hosts"
	managedHostsHeader                = "# Kubernetes-managed hosts file.\n"
	managedHostsHeaderWithHostNetwork = "# Kubernetes-managed hosts file (host network).\n"
	// nodeHostsFile is the node's own hosts file, the base of a
	// hostNetwork pod's.
	nodeHostsFile = "/etc/hosts"
)

// etcHostsFile is the host path of the pod's generated /etc/hosts.
func (k *Kubelet) etcHostsFile(uid types.UID) string {
	return filepath.Join(k.podDir(uid), "etc-hosts")
}

// writeEtcHosts writes the pod's /etc/hosts (rewritten before every
// container start, as upstream does, so a new sandbox's address shows) and
// returns its host path; "" when the pod gets none because its sandbox has
// no address yet and it is not on the host network, in which case the
// runtime's own file stays.
func (k *Kubelet) writeEtcHosts(ctx context.Context, pod *corev1.Pod, sandboxID string) (string, error) {
	var content []byte
	if pod.Spec.HostNetwork {
		node, err := os.ReadFile(nodeHostsFile)
		if err != nil {
			return "", fmt.Errorf("read node hosts file: %w", err)
		}
		content = hostNetworkHostsContent(node, pod.Spec.HostAliases)
	} else {
		resp, err := k.cfg.Runtime.PodSandboxStatus(ctx, sandboxID, false)
		if err != nil {
			return "", fmt.Errorf("sandbox status: %w", err)
		}
		var ips []string
		if net := resp.GetStatus().GetNetwork(); net.GetIp() != "" {
			ips = append(ips, net.GetIp())
			for _, ip := range net.GetAdditionalIps() {
				ips = append(ips, ip.GetIp())
			}
		}
		if len(ips) == 0 {
			return "", nil
		}
		content = managedHostsContent(ips, hostname(pod), k.hostDomain(pod), pod.Spec.HostAliases)
	}
	path := k.etcHostsFile(pod.UID)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("pod directory: %w", err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return "", fmt.Errorf("write pod hosts file: %w", err)
	}
	// WriteFile keeps an existing file's mode and applies the umask.
	if err := os.Chmod(path, 0o644); err != nil {
		return "", fmt.Errorf("pod hosts file: %w", err)
	}
	return path, nil
}

// hostDomain is the pod's domain when it names a subdomain
// (<subdomain>.<namespace>.svc.<cluster domain>), else "".
func (k *Kubelet) hostDomain(pod *corev1.Pod) string {
	if pod.Spec.Subdomain == "" {
		return ""
	}
	return pod.Spec.Subdomain + "." + pod.Namespace + ".svc." + k.cfg.ClusterDomain
}

// managedHostsContent is a pod-network pod's /etc/hosts: localhost
// entries, each pod IP with the pod's hostname (its FQDN first when it has
// a domain), then the host aliases.
func managedHostsContent(ips []string, hostname, domain string, aliases []corev1.HostAlias) []byte {
	var b bytes.Buffer
	b.WriteString(managedHostsHeader)
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
	}
	b.Write(hostAliasEntries(aliases))
	return b.Bytes()
}

// hostNetworkHostsContent is a hostNetwork pod's /etc/hosts: the node's
// file, then the host aliases.
func hostNetworkHostsContent(node []byte, aliases []corev1.HostAlias) []byte {
	var b bytes.Buffer
	b.WriteString(managedHostsHeaderWithHostNetwork)
	b.Write(node)
	b.Write(hostAliasEntries(aliases))
	return b.Bytes()
}

// hostAliasEntries renders spec.hostAliases, one line per IP with its
// names tab-separated.
func hostAliasEntries(aliases []corev1.HostAlias) []byte {
	if len(aliases) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("\n# Entries added by HostAliases.\n")
	for _, a := range aliases {
		fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
	return b.Bytes()
}

// mountsEtcHosts reports whether the container mounts a volume of its own
// at /etc/hosts, which then wins over the kubelet's file.
func mountsEtcHosts(c *corev1.Container) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == etcHostsPath {
			return true
		}
	}
	return false
}
