package service

import (
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry/netvalidation"
)

// maxClientIPAffinitySeconds is the longest ClientIP session affinity.
const maxClientIPAffinitySeconds = 86400

var (
	serviceTypes      = sets.New(corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName)
	affinities        = sets.New(corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone)
	externalPolicies  = sets.New(corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal)
	internalPolicies  = sets.New(corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal)
	ipFamilies        = sets.New(corev1.IPv4Protocol, corev1.IPv6Protocol)
	ipFamilyPolicies  = sets.New(corev1.IPFamilyPolicySingleStack, corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack)
	ipModes           = sets.New(corev1.LoadBalancerIPModeVIP, corev1.LoadBalancerIPModeProxy)
	trafficDistrib    = []string{corev1.ServiceTrafficDistributionPreferClose}
	specPath          = field.NewPath("spec")
	clusterIPsPath    = specPath.Child("clusterIPs")
	portsPath         = specPath.Child("ports")
	loadBalancerTypes = fmt.Sprintf("may only be used when `type` is '%s'", corev1.ServiceTypeLoadBalancer)
)

// Validate checks a service as upstream's ValidateService does, in the same
// order and with the same field paths and messages.
func Validate(svc *corev1.Service) field.ErrorList {
	s := &svc.Spec
	var errs field.ErrorList
	if len(s.Ports) == 0 && !isHeadless(svc) && s.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(portsPath, ""))
	}
	switch s.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if isHeadless(svc) {
			errs = append(errs, field.Invalid(clusterIPsPath.Index(0), s.ClusterIPs[0], fmt.Sprintf("may not be set to 'None' for %s services", s.Type)))
		}
	case corev1.ServiceTypeExternalName:
		if len(s.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(clusterIPsPath, "may not be set for ExternalName services"))
		}
		if len(s.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if s.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		// A trailing dot marks the name (a CNAME) fully qualified.
		if cname := strings.TrimSuffix(s.ExternalName, "."); cname != "" {
			for _, msg := range validation.IsDNS1123Subdomain(cname) {
				errs = append(errs, field.Invalid(specPath.Child("externalName"), cname, msg))
			}
		} else {
			errs = append(errs, field.Required(specPath.Child("externalName"), ""))
		}
	}
	names := sets.New[string]()
	for i := range s.Ports {
		errs = append(errs, validatePort(&s.Ports[i], len(s.Ports) > 1, names, portsPath.Index(i))...)
	}
	if s.Selector != nil {
		errs = append(errs, metav1validation.ValidateLabels(s.Selector, specPath.Child("selector"))...)
	}
	errs = append(errs, validateSessionAffinity(s)...)
	errs = append(errs, validateClusterIPs(svc)...)
	for i, ip := range s.ExternalIPs {
		errs = append(errs, netvalidation.Endpoint(specPath.Child("externalIPs").Index(i), ip, netvalidation.RejectLoopback)...)
	}
	if s.Type == "" {
		errs = append(errs, field.Required(specPath.Child("type"), ""))
	} else if !serviceTypes.Has(s.Type) {
		errs = append(errs, field.NotSupported(specPath.Child("type"), s.Type, sets.List(serviceTypes)))
	}
	if s.Type == corev1.ServiceTypeClusterIP {
		for i, p := range s.Ports {
			if p.NodePort != 0 {
				errs = append(errs, field.Forbidden(portsPath.Index(i).Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
			}
		}
	}
	nodePorts := map[corev1.ServicePort]bool{}
	for i, p := range s.Ports {
		if p.NodePort == 0 {
			continue
		}
		key := corev1.ServicePort{Protocol: p.Protocol, NodePort: p.NodePort}
		if nodePorts[key] {
			errs = append(errs, field.Duplicate(portsPath.Index(i).Child("nodePort"), p.NodePort))
		}
		nodePorts[key] = true
	}
	ports := map[corev1.ServicePort]bool{}
	for i, p := range s.Ports {
		key := corev1.ServicePort{Protocol: p.Protocol, Port: p.Port}
		if ports[key] {
			errs = append(errs, field.Duplicate(portsPath.Index(i), &key))
		}
		ports[key] = true
	}
	if len(s.LoadBalancerSourceRanges) > 0 {
		p := specPath.Child("LoadBalancerSourceRanges") // sic, as upstream
		if s.Type != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Forbidden(p, loadBalancerTypes))
		}
		for i, v := range s.LoadBalancerSourceRanges {
			errs = append(errs, validation.IsValidCIDR(p.Index(i), strings.TrimSpace(v))...)
		}
	}
	if s.AllocateLoadBalancerNodePorts != nil && s.Type != corev1.ServiceTypeLoadBalancer {
		errs = append(errs, field.Forbidden(specPath.Child("allocateLoadBalancerNodePorts"), loadBalancerTypes))
	}
	if s.Type == corev1.ServiceTypeLoadBalancer && s.AllocateLoadBalancerNodePorts == nil {
		errs = append(errs, field.Required(field.NewPath("allocateLoadBalancerNodePorts"), ""))
	}
	if c := s.LoadBalancerClass; c != nil {
		if s.Type != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Forbidden(specPath.Child("loadBalancerClass"), loadBalancerTypes))
		}
		for _, msg := range validation.IsQualifiedName(*c) {
			errs = append(errs, field.Invalid(specPath.Child("loadBalancerClass"), *c, msg))
		}
	}
	errs = append(errs, validateTrafficPolicies(svc)...)
	return errs
}

func validatePort(p *corev1.ServicePort, requireName bool, names sets.Set[string], path *field.Path) field.ErrorList {
	errs := netvalidation.Port(p.Name, requireName, p.Port, p.Protocol, p.AppProtocol, path)
	if p.Name != "" {
		if names.Has(p.Name) {
			errs = append(errs, field.Duplicate(path.Child("name"), p.Name))
		}
		names.Insert(p.Name)
	}
	return append(errs, validatePortNumOrName(p.TargetPort, path.Child("targetPort"))...)
}

func validatePortNumOrName(port intstr.IntOrString, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Type == intstr.Int {
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(path, port.IntValue(), msg))
		}
		return errs
	}
	for _, msg := range validation.IsValidPortName(port.StrVal) {
		errs = append(errs, field.Invalid(path, port.StrVal, msg))
	}
	return errs
}

func validateSessionAffinity(s *corev1.ServiceSpec) field.ErrorList {
	p := specPath.Child("sessionAffinity")
	switch {
	case s.SessionAffinity == "":
		return field.ErrorList{field.Required(p, "")}
	case !affinities.Has(s.SessionAffinity):
		return field.ErrorList{field.NotSupported(p, s.SessionAffinity, sets.List(affinities))}
	case s.SessionAffinity == corev1.ServiceAffinityNone && s.SessionAffinityConfig != nil:
		return field.ErrorList{field.Forbidden(specPath.Child("sessionAffinityConfig"), fmt.Sprintf("must not be set when session affinity is %s", corev1.ServiceAffinityNone))}
	case s.SessionAffinity == corev1.ServiceAffinityClientIP:
		cfg := specPath.Child("sessionAffinityConfig")
		when := fmt.Sprintf("when session affinity type is %s", corev1.ServiceAffinityClientIP)
		c := s.SessionAffinityConfig
		switch {
		case c == nil:
			return field.ErrorList{field.Required(cfg, when)}
		case c.ClientIP == nil:
			return field.ErrorList{field.Required(cfg.Child("clientIP"), when)}
		case c.ClientIP.TimeoutSeconds == nil:
			return field.ErrorList{field.Required(cfg.Child("clientIP", "timeoutSeconds"), when)}
		case *c.ClientIP.TimeoutSeconds <= 0 || *c.ClientIP.TimeoutSeconds > maxClientIPAffinitySeconds:
			return field.ErrorList{field.Invalid(cfg.Child("clientIP", "timeoutSeconds"), *c.ClientIP.TimeoutSeconds, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinitySeconds))}
		}
	}
	return nil
}

// validateClusterIPs checks clusterIP, clusterIPs, ipFamilies and
// ipFamilyPolicy agree (upstream's ValidateServiceClusterIPsRelatedFields).
func validateClusterIPs(svc *corev1.Service) field.ErrorList {
	s := &svc.Spec
	if s.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	var errs field.ErrorList
	if s.ClusterIP != "" {
		if len(s.ClusterIPs) == 0 {
			errs = append(errs, field.Required(clusterIPsPath, ""))
		} else if s.ClusterIPs[0] != s.ClusterIP {
			errs = append(errs, field.Invalid(clusterIPsPath, s.ClusterIPs, "first value must match `clusterIP`"))
		}
	} else if len(s.ClusterIPs) != 0 {
		errs = append(errs, field.Invalid(clusterIPsPath, s.ClusterIPs, "must be empty when `clusterIP` is not specified"))
	}
	seen := sets.New[corev1.IPFamily]()
	for i, f := range s.IPFamilies {
		if !ipFamilies.Has(f) {
			errs = append(errs, field.NotSupported(specPath.Child("ipFamilies").Index(i), f, sets.List(ipFamilies)))
		}
		if seen.Has(f) {
			errs = append(errs, field.Duplicate(specPath.Child("ipFamilies").Index(i), f))
		}
		seen.Insert(f)
	}
	if p := s.IPFamilyPolicy; p != nil && !ipFamilyPolicies.Has(*p) {
		errs = append(errs, field.NotSupported(specPath.Child("ipFamilyPolicy"), *p, sets.List(ipFamilyPolicies)))
	}
	invalidIPs := false
	for i, ip := range s.ClusterIPs {
		if i == 0 && ip == corev1.ClusterIPNone {
			if len(s.ClusterIPs) > 1 {
				invalidIPs = true
				errs = append(errs, field.Invalid(clusterIPsPath, s.ClusterIPs, "'None' must be the first and only value"))
			}
			continue
		}
		ipErrs := netvalidation.IP(clusterIPsPath.Index(i), ip)
		invalidIPs = invalidIPs || len(ipErrs) > 0
		errs = append(errs, ipErrs...)
	}
	if len(s.ClusterIPs) > 2 {
		errs = append(errs, field.Invalid(clusterIPsPath, s.ClusterIPs, "may only hold up to 2 values"))
	}
	if invalidIPs {
		return errs
	}
	if len(s.ClusterIPs) == 2 && isIPv6(s.ClusterIPs[0]) == isIPv6(s.ClusterIPs[1]) {
		errs = append(errs, field.Invalid(clusterIPsPath, s.ClusterIPs, "may specify no more than one IP for each IP family"))
	}
	if !isHeadless(svc) {
		for i, ip := range s.ClusterIPs {
			if i >= len(s.IPFamilies) {
				break
			}
			if want := s.IPFamilies[i]; (want == corev1.IPv6Protocol) != isIPv6(ip) {
				errs = append(errs, field.Invalid(clusterIPsPath.Index(i), ip, fmt.Sprintf("expected an %s value as indicated by `ipFamilies[%d]`", want, i)))
			}
		}
	}
	return errs
}

func isIPv6(ip string) bool {
	parsed := net.ParseIP(ip)
	return parsed != nil && parsed.To4() == nil
}

func validateTrafficPolicies(svc *corev1.Service) field.ErrorList {
	s := &svc.Spec
	var errs field.ErrorList
	if !externallyAccessible(svc) {
		if s.ExternalTrafficPolicy != "" {
			errs = append(errs, field.Invalid(specPath.Child("externalTrafficPolicy"), s.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
		}
	} else if s.ExternalTrafficPolicy == "" {
		errs = append(errs, field.Required(specPath.Child("externalTrafficPolicy"), ""))
	} else if !externalPolicies.Has(s.ExternalTrafficPolicy) {
		errs = append(errs, field.NotSupported(specPath.Child("externalTrafficPolicy"), s.ExternalTrafficPolicy, sets.List(externalPolicies)))
	}
	hc := specPath.Child("healthCheckNodePort")
	if !needsHealthCheckNodePort(svc) {
		if s.HealthCheckNodePort != 0 {
			errs = append(errs, field.Invalid(hc, s.HealthCheckNodePort, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
		}
	} else if s.HealthCheckNodePort != 0 {
		// Zero is allowed here: allocation fills it in.
		for _, msg := range validation.IsValidPortNum(int(s.HealthCheckNodePort)) {
			errs = append(errs, field.Invalid(hc, s.HealthCheckNodePort, msg))
		}
	}
	itp := specPath.Child("internalTrafficPolicy")
	if s.InternalTrafficPolicy == nil {
		if s.Type != corev1.ServiceTypeExternalName {
			errs = append(errs, field.Required(itp, ""))
		}
	} else if !internalPolicies.Has(*s.InternalTrafficPolicy) {
		errs = append(errs, field.NotSupported(itp, *s.InternalTrafficPolicy, sets.List(internalPolicies)))
	}
	if d := s.TrafficDistribution; d != nil && *d != corev1.ServiceTrafficDistributionPreferClose {
		errs = append(errs, field.NotSupported(specPath.Child("trafficDistribution"), *d, trafficDistrib))
	}
	return errs
}

// ValidateUpdate checks an update: clusterIPs and ipFamilies may not change
// (except to and from ExternalName) and neither may the health check node
// port, then the new service as a whole.
func ValidateUpdate(svc, old *corev1.Service) field.ErrorList {
	s, o := &svc.Spec, &old.Spec
	var errs field.ErrorList
	if s.Type != corev1.ServiceTypeExternalName && o.Type != corev1.ServiceTypeExternalName && !(isHeadless(svc) && isHeadless(old)) {
		switch {
		case len(o.ClusterIPs) == len(s.ClusterIPs):
			for i := range o.ClusterIPs {
				if o.ClusterIPs[i] != s.ClusterIPs[i] {
					errs = append(errs, field.Invalid(clusterIPsPath.Index(i), s.ClusterIPs, "may not change once set"))
				}
			}
		case len(s.ClusterIPs) == 0:
			errs = append(errs, field.Invalid(clusterIPsPath.Index(0), s.ClusterIPs, "primary clusterIP can not be unset"))
		case len(o.ClusterIPs) > 0 && s.ClusterIPs[0] != o.ClusterIPs[0]:
			errs = append(errs, field.Invalid(clusterIPsPath.Index(0), s.ClusterIPs, "may not change once set"))
		}
		if isHeadless(svc) == isHeadless(old) && len(o.IPFamilies) > 0 && len(s.IPFamilies) > 0 && o.IPFamilies[0] != s.IPFamilies[0] {
			errs = append(errs, field.Invalid(specPath.Child("ipFamilies").Index(0), s.IPFamilies, "may not change once set"))
		}
	}
	if o.Type == corev1.ServiceTypeLoadBalancer && s.Type == corev1.ServiceTypeLoadBalancer && !apiequality.Semantic.DeepEqual(o.LoadBalancerClass, s.LoadBalancerClass) {
		errs = append(errs, field.Invalid(specPath.Child("loadBalancerClass"), s.LoadBalancerClass, "may not change once set"))
	}
	if needsHealthCheckNodePort(old) && needsHealthCheckNodePort(svc) && s.HealthCheckNodePort != o.HealthCheckNodePort {
		errs = append(errs, field.Forbidden(specPath.Child("healthCheckNodePort"), "field is immutable"))
	}
	return append(errs, Validate(svc)...)
}

// ValidateLoadBalancerStatus checks a service's load balancer status.
func ValidateLoadBalancerStatus(status *corev1.LoadBalancerStatus, path *field.Path, spec *corev1.ServiceSpec) field.ErrorList {
	ingress := path.Child("ingress")
	if spec.Type != corev1.ServiceTypeLoadBalancer && len(status.Ingress) != 0 {
		return field.ErrorList{field.Forbidden(ingress, "may only be used when `spec.type` is 'LoadBalancer'")}
	}
	var errs field.ErrorList
	for i, in := range status.Ingress {
		p := ingress.Index(i)
		if in.IP != "" {
			errs = append(errs, netvalidation.IP(p.Child("ip"), in.IP)...)
		}
		switch {
		case in.IPMode == nil:
			if in.IP != "" {
				errs = append(errs, field.Required(p.Child("ipMode"), "must be specified when `ip` is set"))
			}
		case in.IP == "":
			errs = append(errs, field.Forbidden(p.Child("ipMode"), "may not be specified when `ip` is not set"))
		case !ipModes.Has(*in.IPMode):
			errs = append(errs, field.NotSupported(p.Child("ipMode"), *in.IPMode, sets.List(ipModes)))
		}
		if in.Hostname != "" {
			for _, msg := range validation.IsDNS1123Subdomain(in.Hostname) {
				errs = append(errs, field.Invalid(p.Child("hostname"), in.Hostname, msg))
			}
			if net.ParseIP(in.Hostname) != nil {
				errs = append(errs, field.Invalid(p.Child("hostname"), in.Hostname, "must be a DNS name, not an IP address"))
			}
		}
	}
	return errs
}
