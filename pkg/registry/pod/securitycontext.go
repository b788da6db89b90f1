package pod

import (
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
)

// validateContainerSecurityContext rejects the combinations upstream's
// ValidateSecurityContext rejects: a container cannot both forbid privilege
// escalation (no_new_privs) and be privileged or add CAP_SYS_ADMIN.
func validateContainerSecurityContext(sc *corev1.SecurityContext, path *field.Path) field.ErrorList {
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		return nil
	}
	var errs field.ErrorList
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, field.Invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
	}
	if sc.Capabilities != nil {
		for _, c := range sc.Capabilities.Add {
			if c == "CAP_SYS_ADMIN" {
				errs = append(errs, field.Invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"))
			}
		}
	}
	return errs
}

// Sysctl names as upstream's API validation accepts them: dot- or
// slash-separated segments of lower-case letters, digits, '-' and '_'.
const (
	sysctlSegmentFmt  = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
	sysctlNameFmt     = "(" + sysctlSegmentFmt + "[\\./])*" + sysctlSegmentFmt
	sysctlNameMaxLen  = 253
	sysctlNameMessage = "must have at most %d characters and match regex %s"
)

var sysctlNameRegexp = regexp.MustCompile("^" + sysctlNameFmt + "$")

// IsValidSysctlName says whether name is a well-formed sysctl name.
func IsValidSysctlName(name string) bool {
	return len(name) <= sysctlNameMaxLen && sysctlNameRegexp.MatchString(name)
}

// validateSysctls checks spec.securityContext.sysctls as upstream does:
// names well formed and unique, and no sysctl of a namespace the pod shares
// with the host. Whether a sysctl is allowed at all is the kubelet's
// decision (SysctlForbidden), not the API's.
func validateSysctls(spec *corev1.PodSpec, path *field.Path) field.ErrorList {
	if spec.SecurityContext == nil {
		return nil
	}
	var errs field.ErrorList
	names := map[string]bool{}
	for i, s := range spec.SecurityContext.Sysctls {
		p := path.Index(i).Child("name")
		switch {
		case s.Name == "":
			errs = append(errs, field.Required(p, ""))
		case !IsValidSysctlName(s.Name):
			errs = append(errs, field.Invalid(p, s.Name, fmt.Sprintf(sysctlNameMessage, sysctlNameMaxLen, sysctlNameRegexp)))
		case names[s.Name]:
			errs = append(errs, field.Duplicate(p, s.Name))
		}
		names[s.Name] = true
		ns, _, _ := utilsysctl.GetNamespace(s.Name)
		switch {
		case spec.HostNetwork && ns == utilsysctl.NetNamespace:
			errs = append(errs, field.Invalid(p, s.Name, "may not be specified when 'hostNetwork' is true"))
		case spec.HostIPC && ns == utilsysctl.IPCNamespace:
			errs = append(errs, field.Invalid(p, s.Name, "may not be specified when 'hostIPC' is true"))
		}
	}
	return errs
}
