// Package endpointslice is the registry strategy for discovery.k8s.io/v1
// endpointslices.
package endpointslice

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// Limits upstream enforces on a slice.
const (
	maxEndpoints = 1000
	maxPorts     = 20000
	maxAddresses = 100
)

// NewResource describes the endpointslices resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: discoveryv1.SchemeGroupVersion.WithResource("endpointslices"),
		Kind:                 "EndpointSlice",
		SingularName:         "endpointslice",
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &discoveryv1.EndpointSlice{} },
		NewList:              func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
		Strategy:             strategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "AddressType", Type: "string", Description: discoveryv1.EndpointSlice{}.SwaggerDoc()["addressType"]},
				{Name: "Ports", Type: "string", Description: discoveryv1.EndpointSlice{}.SwaggerDoc()["ports"]},
				{Name: "Endpoints", Type: "string", Description: discoveryv1.EndpointSlice{}.SwaggerDoc()["endpoints"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				s := obj.(*discoveryv1.EndpointSlice)
				return []interface{}{s.Name, string(s.AddressType), formatPorts(s.Ports), formatEndpoints(s.Endpoints), registry.Age(s.CreationTimestamp, now)}
			},
		},
	}
}

func formatPorts(ports []discoveryv1.EndpointPort) string {
	if len(ports) == 0 {
		return "<unset>"
	}
	var out []string
	for i, p := range ports {
		if i == 3 {
			out[len(out)-1] += fmt.Sprintf(" + %d more...", len(ports)-3)
			break
		}
		if p.Port == nil {
			out = append(out, "<unset>")
		} else {
			out = append(out, strconv.Itoa(int(*p.Port)))
		}
	}
	return strings.Join(out, ",")
}

func formatEndpoints(eps []discoveryv1.Endpoint) string {
	var out []string
	total := 0
	for _, e := range eps {
		for _, a := range e.Addresses {
			total++
			if len(out) < 3 {
				out = append(out, a)
			}
		}
	}
	if total == 0 {
		return "<unset>"
	}
	s := strings.Join(out, ",")
	if total > len(out) {
		s += fmt.Sprintf(" + %d more...", total-len(out))
	}
	return s
}

type strategy struct{ registry.DefaultStrategy }

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*discoveryv1.EndpointSlice))
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	s, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	return append(validate(s), registry.Immutable(!apiequality.Semantic.DeepEqual(s.AddressType, o.AddressType), field.NewPath("addressType"))...)
}

var (
	addressTypes = []string{string(discoveryv1.AddressTypeIPv4), string(discoveryv1.AddressTypeIPv6), string(discoveryv1.AddressTypeFQDN)}
	protocols    = []string{string(corev1.ProtocolSCTP), string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}
)

func validate(s *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	if !slices.Contains(addressTypes, string(s.AddressType)) {
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), s.AddressType, addressTypes))
	}
	if len(s.Endpoints) > maxEndpoints {
		errs = append(errs, field.TooMany(field.NewPath("endpoints"), len(s.Endpoints), maxEndpoints))
	}
	for i, e := range s.Endpoints {
		p := field.NewPath("endpoints").Index(i)
		if len(e.Addresses) == 0 || len(e.Addresses) > maxAddresses {
			errs = append(errs, field.Invalid(p.Child("addresses"), len(e.Addresses), fmt.Sprintf("must have at least 1 and at most %d addresses", maxAddresses)))
		}
		for j, a := range e.Addresses {
			ap := p.Child("addresses").Index(j)
			switch s.AddressType {
			case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
				ipErrs := validation.IsValidIP(ap, a)
				if ip := net.ParseIP(a); len(ipErrs) == 0 && (ip.To4() != nil) != (s.AddressType == discoveryv1.AddressTypeIPv4) {
					ipErrs = append(ipErrs, field.Invalid(ap, a, "must be an "+string(s.AddressType)+" address"))
				}
				errs = append(errs, ipErrs...)
			case discoveryv1.AddressTypeFQDN:
				for _, msg := range validation.IsFullyQualifiedDomainName(ap, a) {
					errs = append(errs, msg)
				}
			}
		}
		if e.Hostname != nil {
			for _, msg := range validation.IsDNS1123Label(*e.Hostname) {
				errs = append(errs, field.Invalid(p.Child("hostname"), *e.Hostname, msg))
			}
		}
	}
	if len(s.Ports) > maxPorts {
		errs = append(errs, field.TooMany(field.NewPath("ports"), len(s.Ports), maxPorts))
	}
	names := map[string]bool{}
	for i, port := range s.Ports {
		p := field.NewPath("ports").Index(i)
		if port.Name != nil {
			if *port.Name != "" {
				for _, msg := range validation.IsDNS1123Label(*port.Name) {
					errs = append(errs, field.Invalid(p.Child("name"), *port.Name, msg))
				}
			}
			if names[*port.Name] {
				errs = append(errs, field.Duplicate(p.Child("name"), *port.Name))
			}
			names[*port.Name] = true
		}
		if port.Protocol != nil && !slices.Contains(protocols, string(*port.Protocol)) {
			errs = append(errs, field.NotSupported(p.Child("protocol"), *port.Protocol, protocols))
		}
		if port.Port != nil && (*port.Port < 0 || *port.Port > 65535) {
			errs = append(errs, field.Invalid(p.Child("port"), *port.Port, "must be between 0 and 65535, inclusive"))
		}
	}
	return errs
}
