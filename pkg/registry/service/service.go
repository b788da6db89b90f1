// Package service is the registry strategy for core/v1 services: upstream's
// defaults and validation, and ClusterIP and NodePort allocation that is
// atomic with the Service's own write (see package allocator).
package service

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/service/allocator"
)

// Reservation key prefixes of allocated ClusterIPs and NodePorts.
const (
	IPReservationPrefix       = "/registry/reservations/serviceips/"
	NodePortReservationPrefix = "/registry/reservations/servicenodeports/"
)

// DefaultNodePortRange is upstream's default NodePort range, 30000-32767.
var DefaultNodePortRange = struct{ Base, Size int }{30000, 2768}

// Config configures service allocation.
type Config struct {
	// ServiceCIDR is the range ClusterIPs come from.
	ServiceCIDR string
	// Seed seeds the random choice of free IPs and ports.
	Seed uint64
}

// NewResource describes the services resource.
func NewResource(cfg Config) (*registry.Resource, error) {
	ips, err := allocator.NewIPRange(cfg.ServiceCIDR, IPReservationPrefix, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("service CIDR: %w", err)
	}
	ports := allocator.NewPortRange(DefaultNodePortRange.Base, DefaultNodePortRange.Size, NodePortReservationPrefix, cfg.Seed+1)
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("services"),
		Kind:                 "Service",
		SingularName:         "service",
		ShortNames:           []string{"svc"},
		Categories:           []string{"all"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.Service{} },
		NewList:              func() runtime.Object { return &corev1.ServiceList{} },
		Strategy:             &strategy{ips: ips, ports: ports},
		Status:               registry.StatusOnly{},
		ReturnDeletedObject:  true,
		Fields: func(obj runtime.Object) fields.Set {
			s := obj.(*corev1.Service)
			return fields.Set{"spec.clusterIP": s.Spec.ClusterIP, "spec.type": string(s.Spec.Type)}
		},
		Subresources: []registry.Subresource{{Name: "proxy", Kind: "ServiceProxyOptions", Verbs: []string{"create", "delete", "get", "patch", "update"},
			Connect: func(context.Context, string, string, url.Values) (http.Handler, error) {
				return nil, apierrors.NewServiceUnavailable("services/proxy is not served yet")
			}}},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Type", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["type"]},
				{Name: "Cluster-IP", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["clusterIP"]},
				{Name: "External-IP", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["externalIPs"]},
				{Name: "Port(s)", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["ports"]},
				registry.AgeColumn,
				{Name: "Selector", Type: "string", Priority: 1, Description: corev1.ServiceSpec{}.SwaggerDoc()["selector"]},
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				s := obj.(*corev1.Service)
				clusterIP := s.Spec.ClusterIP
				if clusterIP == "" {
					clusterIP = "<none>"
				}
				sel := "<none>"
				if len(s.Spec.Selector) > 0 {
					sel = labels.FormatLabels(s.Spec.Selector)
				}
				return []interface{}{s.Name, string(s.Spec.Type), clusterIP, externalIPs(s), Ports(s), registry.Age(s.CreationTimestamp, now), sel}
			},
		},
	}, nil
}

// Ports renders the PORT(S) column: "80/TCP", "80:30080/TCP,443/TCP".
func Ports(s *corev1.Service) string {
	if len(s.Spec.Ports) == 0 {
		return "<none>"
	}
	var out []string
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			out = append(out, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
		} else {
			out = append(out, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	return strings.Join(out, ",")
}

func externalIPs(s *corev1.Service) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			} else if in.Hostname != "" {
				ips = append(ips, in.Hostname)
			}
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	}
	if len(s.Spec.ExternalIPs) > 0 {
		return strings.Join(s.Spec.ExternalIPs, ",")
	}
	return "<none>"
}

type strategy struct {
	registry.SpecStatusStrategy
	ips   *allocator.IPRange
	ports *allocator.PortRange
}

var _ registry.Reserver = (*strategy)(nil)

func (*strategy) NameValidation() registry.NameRule { return apivalidation.NameIsDNS1035Label }

func hasNodePorts(t corev1.ServiceType) bool {
	return t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

// Default applies upstream's service defaults.
func (*strategy) Default(obj runtime.Object) {
	s := &obj.(*corev1.Service).Spec
	if s.Type == "" {
		s.Type = corev1.ServiceTypeClusterIP
	}
	if s.SessionAffinity == "" {
		s.SessionAffinity = corev1.ServiceAffinityNone
	}
	if s.SessionAffinity == corev1.ServiceAffinityClientIP {
		if s.SessionAffinityConfig == nil {
			s.SessionAffinityConfig = &corev1.SessionAffinityConfig{}
		}
		if s.SessionAffinityConfig.ClientIP == nil {
			s.SessionAffinityConfig.ClientIP = &corev1.ClientIPConfig{}
		}
		if s.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			t := corev1.DefaultClientIPServiceAffinitySeconds
			s.SessionAffinityConfig.ClientIP.TimeoutSeconds = &t
		}
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if hasNodePorts(s.Type) && s.ExternalTrafficPolicy == "" {
		s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if s.Type != corev1.ServiceTypeExternalName {
		if s.InternalTrafficPolicy == nil {
			p := corev1.ServiceInternalTrafficPolicyCluster
			s.InternalTrafficPolicy = &p
		}
		if s.ClusterIP == "" && len(s.ClusterIPs) > 0 {
			s.ClusterIP = s.ClusterIPs[0]
		}
	}
	if s.Type == corev1.ServiceTypeLoadBalancer && s.AllocateLoadBalancerNodePorts == nil {
		t := true
		s.AllocateLoadBalancerNodePorts = &t
	}
}

// PrepareForUpdate keeps allocated values a client left out (kubectl
// replace of a manifest without clusterIP) and drops those the new type
// does not use, as upstream does.
func (st *strategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	st.SpecStatusStrategy.PrepareForUpdate(ctx, obj, old)
	s, o := &obj.(*corev1.Service).Spec, &old.(*corev1.Service).Spec
	if s.Type == corev1.ServiceTypeExternalName {
		if o.Type != corev1.ServiceTypeExternalName && s.ClusterIP == o.ClusterIP {
			s.ClusterIP, s.ClusterIPs, s.IPFamilies, s.IPFamilyPolicy = "", nil, nil, nil
		}
	} else if s.ClusterIP == "" && len(s.ClusterIPs) == 0 && o.ClusterIP != "" {
		s.ClusterIP, s.ClusterIPs = o.ClusterIP, o.ClusterIPs
		if len(s.IPFamilies) == 0 {
			s.IPFamilies = o.IPFamilies
		}
		if s.IPFamilyPolicy == nil {
			s.IPFamilyPolicy = o.IPFamilyPolicy
		}
	}
	if hasNodePorts(s.Type) {
		for i := range s.Ports {
			if s.Ports[i].NodePort != 0 {
				continue
			}
			for _, op := range o.Ports {
				if op.Port == s.Ports[i].Port && op.Protocol == s.Ports[i].Protocol {
					s.Ports[i].NodePort = op.NodePort
				}
			}
		}
	} else if hasNodePorts(o.Type) {
		for i := range s.Ports {
			for _, op := range o.Ports {
				if op.NodePort == s.Ports[i].NodePort {
					s.Ports[i].NodePort = 0
				}
			}
		}
	}
}

func (st *strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.Service))
}

func (st *strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	s, o := obj.(*corev1.Service), old.(*corev1.Service)
	errs := validate(s)
	if o.Spec.ClusterIP != "" && s.Spec.Type != corev1.ServiceTypeExternalName && o.Spec.Type != corev1.ServiceTypeExternalName && s.Spec.ClusterIP != o.Spec.ClusterIP {
		errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), s.Spec.ClusterIPs, "may not change once set"))
	}
	return errs
}

// maxClientIPAffinitySeconds is the longest session affinity (one day).
const maxClientIPAffinitySeconds = 86400

var (
	serviceTypes    = []string{string(corev1.ServiceTypeClusterIP), string(corev1.ServiceTypeExternalName), string(corev1.ServiceTypeLoadBalancer), string(corev1.ServiceTypeNodePort)}
	protocols       = []string{string(corev1.ProtocolSCTP), string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}
	affinities      = []string{string(corev1.ServiceAffinityClientIP), string(corev1.ServiceAffinityNone)}
	trafficPolicies = []string{string(corev1.ServiceExternalTrafficPolicyCluster), string(corev1.ServiceExternalTrafficPolicyLocal)}
)

func validate(svc *corev1.Service) field.ErrorList {
	spec := field.NewPath("spec")
	s := &svc.Spec
	var errs field.ErrorList
	if !slices.Contains(serviceTypes, string(s.Type)) {
		errs = append(errs, field.NotSupported(spec.Child("type"), s.Type, serviceTypes))
	}
	headless := s.ClusterIP == corev1.ClusterIPNone
	if s.Type == corev1.ServiceTypeExternalName {
		if s.ClusterIP != "" {
			errs = append(errs, field.Forbidden(spec.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if s.ExternalName == "" {
			errs = append(errs, field.Required(spec.Child("externalName"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(strings.TrimSuffix(s.ExternalName, ".")) {
				errs = append(errs, field.Invalid(spec.Child("externalName"), s.ExternalName, msg))
			}
		}
	} else if len(s.Ports) == 0 && !headless {
		errs = append(errs, field.Required(spec.Child("ports"), ""))
	}
	if s.ClusterIP != "" && !headless && net.ParseIP(s.ClusterIP) == nil {
		errs = append(errs, field.Invalid(spec.Child("clusterIPs").Index(0), s.ClusterIP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
	}
	if headless && hasNodePorts(s.Type) {
		errs = append(errs, field.Invalid(spec.Child("clusterIPs").Index(0), s.ClusterIP, fmt.Sprintf("may not be set to 'None' for %s services", s.Type)))
	}
	names := sets.New[string]()
	for i, p := range s.Ports {
		pp := spec.Child("ports").Index(i)
		if len(s.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		} else if p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		if !slices.Contains(protocols, string(p.Protocol)) {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, protocols))
		}
		if p.TargetPort.Type == intstr.Int {
			for _, msg := range validation.IsValidPortNum(int(p.TargetPort.IntVal)) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.IntVal, msg))
			}
		} else {
			for _, msg := range validation.IsValidPortName(p.TargetPort.StrVal) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.StrVal, msg))
			}
		}
		if p.NodePort != 0 && !hasNodePorts(s.Type) {
			errs = append(errs, field.Forbidden(pp.Child("nodePort"), fmt.Sprintf("may not be used when `type` is '%s'", s.Type)))
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(s.Selector, spec.Child("selector"))...)
	if !slices.Contains(affinities, string(s.SessionAffinity)) {
		errs = append(errs, field.NotSupported(spec.Child("sessionAffinity"), s.SessionAffinity, affinities))
	}
	if c := s.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPAffinitySeconds {
			errs = append(errs, field.Invalid(spec.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), t, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinitySeconds)))
		}
	}
	if s.ExternalTrafficPolicy != "" {
		if !hasNodePorts(s.Type) {
			errs = append(errs, field.Invalid(spec.Child("externalTrafficPolicy"), s.ExternalTrafficPolicy, "may only be set for services with type NodePort or LoadBalancer"))
		} else if !slices.Contains(trafficPolicies, string(s.ExternalTrafficPolicy)) {
			errs = append(errs, field.NotSupported(spec.Child("externalTrafficPolicy"), s.ExternalTrafficPolicy, trafficPolicies))
		}
	}
	for i, ip := range s.ExternalIPs {
		for _, e := range validation.IsValidIP(spec.Child("externalIPs").Index(i), ip) {
			errs = append(errs, e)
		}
	}
	return errs
}

// Allocate fills in a ClusterIP and NodePorts the service needs and has
// not asked for, and checks the ones it asked for are free.
func (st *strategy) Allocate(ctx context.Context, obj, old runtime.Object, exists func(string) (bool, error)) error {
	svc := obj.(*corev1.Service)
	s := &svc.Spec
	held := map[string]bool{}
	if old != nil {
		for _, k := range st.Reservations(old) {
			held[k] = true
		}
	}
	gk := corev1.SchemeGroupVersion.WithKind("Service").GroupKind()
	invalid := func(p *field.Path, v interface{}, msg string) error {
		return apierrors.NewInvalid(gk, svc.Name, field.ErrorList{field.Invalid(p, v, msg)})
	}
	if s.Type != corev1.ServiceTypeExternalName && s.ClusterIP != corev1.ClusterIPNone {
		ipPath := field.NewPath("spec", "clusterIPs").Index(0)
		if s.ClusterIP == "" {
			ip, err := st.ips.Pick(ctx, exists)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			s.ClusterIP = ip.String()
		} else if !held[st.ips.Key(s.ClusterIP)] {
			if !st.ips.Contains(net.ParseIP(s.ClusterIP)) {
				return invalid(ipPath, []string{s.ClusterIP}, fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", s.ClusterIP, s.ClusterIP, st.ips.CIDR()))
			}
			if taken, err := exists(st.ips.Key(s.ClusterIP)); err != nil {
				return err
			} else if taken {
				return invalid(ipPath, []string{s.ClusterIP}, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", s.ClusterIP))
			}
		}
		s.ClusterIPs = []string{s.ClusterIP}
		single := corev1.IPFamilyPolicySingleStack
		s.IPFamilyPolicy = &single
		family := corev1.IPv4Protocol
		if net.ParseIP(s.ClusterIP).To4() == nil {
			family = corev1.IPv6Protocol
		}
		s.IPFamilies = []corev1.IPFamily{family}
	} else if s.ClusterIP == corev1.ClusterIPNone {
		s.ClusterIPs = []string{corev1.ClusterIPNone}
		if s.IPFamilyPolicy == nil {
			single := corev1.IPFamilyPolicySingleStack
			s.IPFamilyPolicy = &single
		}
		if len(s.IPFamilies) == 0 {
			s.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
	}
	if !hasNodePorts(s.Type) || (s.Type == corev1.ServiceTypeLoadBalancer && s.AllocateLoadBalancerNodePorts != nil && !*s.AllocateLoadBalancerNodePorts) {
		return nil
	}
	inUse := map[int]bool{}
	for i := range s.Ports {
		p := &s.Ports[i]
		path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
		if p.NodePort == 0 {
			port, err := st.ports.Pick(ctx, exists, inUse)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			p.NodePort = int32(port)
		} else if !held[st.ports.Key(int(p.NodePort))] && !inUse[int(p.NodePort)] {
			if !st.ports.Contains(int(p.NodePort)) {
				return invalid(path, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %s", st.ports))
			}
			if taken, err := exists(st.ports.Key(int(p.NodePort))); err != nil {
				return err
			} else if taken {
				return invalid(path, p.NodePort, "provided port is already allocated")
			}
		}
		inUse[int(p.NodePort)] = true
	}
	return nil
}

// Reservations implements registry.Reserver.
func (st *strategy) Reservations(obj runtime.Object) []string {
	s := &obj.(*corev1.Service).Spec
	var keys []string
	if s.ClusterIP != "" && s.ClusterIP != corev1.ClusterIPNone && s.Type != corev1.ServiceTypeExternalName {
		keys = append(keys, st.ips.Key(s.ClusterIP))
	}
	seen := map[int32]bool{}
	for _, p := range s.Ports {
		if p.NodePort != 0 && !seen[p.NodePort] {
			seen[p.NodePort] = true
			keys = append(keys, st.ports.Key(int(p.NodePort)))
		}
	}
	return keys
}
