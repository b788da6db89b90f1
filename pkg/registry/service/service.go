// Package service is the registry strategy for core/v1 services: upstream's
// defaults (defaults.go), validation (validation.go), the Table kubectl
// prints, and ClusterIP and NodePort allocation (allocate.go) that is atomic
// with the Service's own write: every allocated IP or port is a reservation
// key the storage layer creates and removes in the same etcd transaction as
// the Service (package allocator picks the free values).
package service

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/service/allocator"
)

// Reservation key prefixes of allocated ClusterIPs and NodePorts.
const (
	IPReservationPrefix       = "/registry/reservations/serviceips/"
	NodePortReservationPrefix = "/registry/reservations/servicenodeports/"
)

// NodePortRange is upstream's default NodePort range, 30000-32767.
var NodePortRange = struct{ Base, Size int }{30000, 2768}

// Config configures service allocation.
type Config struct {
	// ServiceCIDR is the range ClusterIPs come from (one IP family).
	ServiceCIDR string
	// Seed seeds the random choice of free IPs and ports.
	Seed uint64
	// Proxy is what services/proxy reads.
	Proxy ProxyConfig
}

// NewResource describes the services resource; it fails when the service
// CIDR is not usable.
func NewResource(cfg Config) (*registry.Resource, error) {
	ips, err := allocator.NewIPRange(cfg.ServiceCIDR, IPReservationPrefix, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("service CIDR: %w", err)
	}
	st := &strategy{ips: ips, ports: allocator.NewPortRange(NodePortRange.Base, NodePortRange.Size, NodePortReservationPrefix, cfg.Seed+1)}
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("services"),
		Kind:                 "Service",
		SingularName:         "service",
		ShortNames:           []string{"svc"},
		Categories:           []string{"all"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.Service{} },
		NewList:              func() runtime.Object { return &corev1.ServiceList{} },
		Strategy:             st,
		Status:               statusStrategy{},
		ReturnDeletedObject:  true,
		Fields: func(obj runtime.Object) fields.Set {
			s := obj.(*corev1.Service)
			return fields.Set{"spec.clusterIP": s.Spec.ClusterIP, "spec.type": string(s.Spec.Type)}
		},
		Subresources: []registry.Subresource{ProxySubresource(cfg.Proxy)},
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
				clusterIP := "<none>"
				if len(s.Spec.ClusterIPs) > 0 {
					clusterIP = s.Spec.ClusterIPs[0]
				}
				return []interface{}{s.Name, string(s.Spec.Type), clusterIP, ExternalIP(s), Ports(s), registry.Age(s.CreationTimestamp, now), labels.FormatLabels(s.Spec.Selector)}
			},
		},
	}, nil
}

// Ports renders the PORT(S) column: "80/TCP", "80:30080/TCP,443/TCP", or
// "<none>".
func Ports(s *corev1.Service) string {
	if len(s.Spec.Ports) == 0 {
		return "<none>"
	}
	out := make([]string, len(s.Spec.Ports))
	for i, p := range s.Spec.Ports {
		if p.NodePort > 0 {
			out[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			out[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return strings.Join(out, ",")
}

// ExternalIP renders the EXTERNAL-IP column: external IPs, the load
// balancer's addresses ("<pending>" until it has some), or the external
// name.
func ExternalIP(s *corev1.Service) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(s.Spec.ExternalIPs) > 0 {
			return strings.Join(s.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		// The server prints wide tables, so the list is never clipped.
		seen := map[string]bool{}
		var lb []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			addr := in.IP
			if addr == "" {
				addr = in.Hostname
			}
			if addr != "" && !seen[addr] {
				seen[addr] = true
				lb = append(lb, addr)
			}
		}
		sort.Strings(lb)
		all := append(lb, s.Spec.ExternalIPs...)
		if len(all) == 0 {
			return "<pending>"
		}
		return strings.Join(all, ",")
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	}
	return "<unknown>"
}

// strategy is the services' write policy; it also allocates (Reserver).
type strategy struct {
	registry.DefaultStrategy
	ips   *allocator.IPRange
	ports *allocator.PortRange
}

var _ registry.Reserver = (*strategy)(nil)

// NameValidation implements registry.Strategy: service names are DNS-1035
// labels.
func (*strategy) NameValidation() registry.NameRule { return apivalidation.NameIsDNS1035Label }

// Default implements registry.Strategy.
func (*strategy) Default(obj runtime.Object) { Default(obj.(*corev1.Service)) }

// PrepareForCreate implements registry.Strategy.
func (*strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	PrepareForCreate(obj.(*corev1.Service))
}

// PrepareForUpdate implements registry.Strategy.
func (*strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	PrepareForUpdate(obj.(*corev1.Service), old.(*corev1.Service))
}

// Validate implements registry.Strategy.
func (*strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.Service))
}

// ValidateUpdate implements registry.Strategy.
func (*strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidateUpdate(obj.(*corev1.Service), old.(*corev1.Service))
}

// statusStrategy serves services/status: the spec is kept; status and
// metadata (annotations, labels) may change, as upstream's does.
type statusStrategy struct{}

// PrepareForUpdate implements registry.StatusStrategy.
func (statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	registry.KeepSpec(obj, old)
	defaultIPMode(obj.(*corev1.Service))
}

// ValidateUpdate implements registry.StatusStrategy.
func (statusStrategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	s := obj.(*corev1.Service)
	return ValidateLoadBalancerStatus(&s.Status.LoadBalancer, field.NewPath("status", "loadBalancer"), &s.Spec)
}
