// Package sysctl is the kubelet's admission of pod sysctls, as upstream's
// kubelet does it: a pod may set the safe sysctls (namespaced and unable
// to affect other pods) and the unsafe ones the node operator allowed
// (--kubelet-arg allowed-unsafe-sysctls=...); any other sysctl rejects the
// pod with reason SysctlForbidden. The runtime applies the admitted ones
// to the pod sandbox's namespaces.
package sysctl

import (
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
)

// ForbiddenReason is the rejected pod's status reason.
const ForbiddenReason = "SysctlForbidden"

// safeSysctls are upstream's safe set, each with the kernel version since
// which it is namespaced ("" for always).
var safeSysctls = []struct{ name, kernel string }{
	{"kernel.shm_rmid_forced", ""},
	{"net.ipv4.ip_local_port_range", ""},
	{"net.ipv4.tcp_syncookies", ""},
	{"net.ipv4.ping_group_range", ""},
	{"net.ipv4.ip_unprivileged_port_start", ""},
	{"net.ipv4.ip_local_reserved_ports", "3.16"},
	{"net.ipv4.tcp_keepalive_time", "4.5"},
	{"net.ipv4.tcp_fin_timeout", "4.6"},
	{"net.ipv4.tcp_keepalive_intvl", "4.5"},
	{"net.ipv4.tcp_keepalive_probes", "4.5"},
	{"net.ipv4.tcp_rmem", "4.15"},
	{"net.ipv4.tcp_wmem", "4.15"},
	{"net.ipv4.tcp_slow_start_after_idle", "4.15"},
	{"net.ipv4.tcp_notsent_lowat", "4.6"},
}

// Safe returns the safe sysctls namespaced on kernel (nil: only those
// namespaced on every kernel).
func Safe(kernel *version.Version) []string {
	var out []string
	for _, s := range safeSysctls {
		if s.kernel == "" || (kernel != nil && kernel.AtLeast(version.MustParseGeneric(s.kernel))) {
			out = append(out, s.name)
		}
	}
	return out
}

// KernelVersion is the running kernel's version (nil when unknown).
func KernelVersion() *version.Version {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil
	}
	v, err := version.ParseGeneric(unix.ByteSliceToString(u.Release[:]))
	if err != nil {
		return nil
	}
	return v
}

// patternRegexp is upstream's allowed-unsafe-sysctls pattern: a sysctl
// name, optionally ending in "*".
var patternRegexp = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*([a-z0-9][-_a-z0-9]*)?[a-z0-9*]$`)

// Allowlist holds the sysctls pods may set on this node, by name and by
// prefix ("kernel.msg*"), each with the namespace it lives in.
type Allowlist struct {
	names    map[string]utilsysctl.Namespace
	prefixes map[string]utilsysctl.Namespace
}

// NewAllowlist returns the allowlist of patterns (names or "prefix*").
// Only namespaced sysctls can be allowed: others would change the node.
func NewAllowlist(patterns []string) (*Allowlist, error) {
	w := &Allowlist{names: map[string]utilsysctl.Namespace{}, prefixes: map[string]utilsysctl.Namespace{}}
	for _, p := range patterns {
		if len(p) > 253 || !patternRegexp.MatchString(p) {
			return nil, fmt.Errorf("sysctl %q must have at most 253 characters and match regex %s", p, patternRegexp)
		}
		ns, nameOrPrefix, prefixed := utilsysctl.GetNamespace(p)
		if ns == utilsysctl.UnknownNamespace {
			return nil, fmt.Errorf("the sysctls %q are not known to be namespaced", nameOrPrefix)
		}
		if prefixed {
			w.prefixes[nameOrPrefix] = ns
		} else {
			w.names[nameOrPrefix] = ns
		}
	}
	return w, nil
}

// validate says why sysctl is not allowed for a pod sharing the host's
// network, IPC or user namespace as the flags say, or nil.
func (w *Allowlist) validate(sysctl string, hostNet, hostIPC, hostUsers bool) error {
	sysctl = utilsysctl.NormalizeName(sysctl)
	ns, found := w.names[sysctl]
	if !found {
		for p, pns := range w.prefixes {
			if strings.HasPrefix(sysctl, p) {
				ns, found = pns, true
				break
			}
		}
	}
	if !found {
		return fmt.Errorf("%q not allowlisted", sysctl)
	}
	if (ns == utilsysctl.IPCNamespace && hostIPC) || (ns == utilsysctl.NetNamespace && hostNet) || (ns == utilsysctl.UserNamespace && hostUsers) {
		return fmt.Errorf("%q not allowed with host %s enabled", sysctl, ns)
	}
	return nil
}

// Admit returns the rejection message of a pod that sets a sysctl this
// node does not allow ("forbidden sysctl: ..."), or "" when it may run.
func (w *Allowlist) Admit(pod *corev1.Pod) string {
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return ""
	}
	hostUsers := pod.Spec.HostUsers == nil || *pod.Spec.HostUsers
	for _, s := range sc.Sysctls {
		if err := w.validate(s.Name, pod.Spec.HostNetwork, pod.Spec.HostIPC, hostUsers); err != nil {
			return fmt.Sprintf("forbidden sysctl: %v", err)
		}
	}
	return ""
}

// Sysctls returns the pod's sysctls by normalized (dotted) name, as the
// sandbox config carries them.
func Sysctls(pod *corev1.Pod) map[string]string {
	sc := pod.Spec.SecurityContext
	if sc == nil || len(sc.Sysctls) == 0 {
		return nil
	}
	out := make(map[string]string, len(sc.Sysctls))
	for _, s := range sc.Sysctls {
		out[utilsysctl.NormalizeName(s.Name)] = s.Value
	}
	return out
}
