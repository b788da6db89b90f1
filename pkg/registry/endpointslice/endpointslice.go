// Package endpointslice is the registry strategy for discovery.k8s.io/v1
// endpointslices. The endpointslice controller finds the slices of a
// Service by their kubernetes.io/service-name label (LabelServiceName).
package endpointslice

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/netvalidation"
)

// LabelServiceName names the Service a slice belongs to.
const LabelServiceName = discoveryv1.LabelServiceName

// Limits upstream enforces on a slice.
const (
	maxEndpoints      = 1000
	maxPorts          = 20000
	maxAddresses      = 100
	maxTopologyLabels = 16
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
				return []interface{}{s.Name, string(s.AddressType), FormatPorts(s.Ports), FormatEndpoints(s.Endpoints), registry.Age(s.CreationTimestamp, now)}
			},
		},
	}
}

// shown is how many items a column lists before "+ N more...".
const shown = 3

// listWithMore joins the first items and counts the rest, "<unset>" when
// there are none.
func listWithMore(items []string) string {
	if len(items) == 0 {
		return "<unset>"
	}
	if len(items) <= shown {
		return strings.Join(items, ",")
	}
	return fmt.Sprintf("%s + %d more...", strings.Join(items[:shown], ","), len(items)-shown)
}

// FormatPorts renders the PORTS column: port numbers, a port's name when
// it has no number, "*" when it has neither.
func FormatPorts(ports []discoveryv1.EndpointPort) string {
	items := make([]string, 0, len(ports))
	for _, p := range ports {
		switch {
		case p.Port != nil:
			items = append(items, strconv.Itoa(int(*p.Port)))
		case p.Name != nil:
			items = append(items, *p.Name)
		default:
			items = append(items, "*")
		}
	}
	return listWithMore(items)
}

// FormatEndpoints renders the ENDPOINTS column: the endpoints' addresses.
func FormatEndpoints(eps []discoveryv1.Endpoint) string {
	var items []string
	for _, e := range eps {
		items = append(items, e.Addresses...)
	}
	return listWithMore(items)
}

type strategy struct{ registry.DefaultStrategy }

// Default implements registry.Strategy: ports get an empty name and TCP.
func (strategy) Default(obj runtime.Object) {
	s := obj.(*discoveryv1.EndpointSlice)
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Name == nil {
			p.Name = ptr.To("")
		}
		if p.Protocol == nil {
			p.Protocol = ptr.To(corev1.ProtocolTCP)
		}
	}
}

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*discoveryv1.EndpointSlice))
}

// ValidateUpdate implements registry.Strategy: the address type is
// immutable.
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	s, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	return append(Validate(s), apivalidation.ValidateImmutableField(s.AddressType, o.AddressType, field.NewPath("addressType"))...)
}

var (
	addressTypes = sets.New(discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN)
)

// Validate checks a slice as upstream's ValidateEndpointSlice does, except
// that loopback addresses are accepted (see netvalidation.AllowLoopback).
func Validate(s *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	if s.AddressType == "" {
		errs = append(errs, field.Required(field.NewPath("addressType"), ""))
	} else if !addressTypes.Has(s.AddressType) {
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), s.AddressType, sets.List(addressTypes)))
	}
	errs = append(errs, validateEndpoints(s.Endpoints, s.AddressType, field.NewPath("endpoints"))...)
	return append(errs, validatePorts(s.Ports, field.NewPath("ports"))...)
}

func validateEndpoints(eps []discoveryv1.Endpoint, addressType discoveryv1.AddressType, path *field.Path) field.ErrorList {
	if len(eps) > maxEndpoints {
		return field.ErrorList{field.TooMany(path, len(eps), maxEndpoints)}
	}
	var errs field.ErrorList
	for i, e := range eps {
		p := path.Index(i)
		addresses := p.Child("addresses")
		if len(e.Addresses) == 0 {
			errs = append(errs, field.Required(addresses, "must contain at least 1 address"))
		} else if len(e.Addresses) > maxAddresses {
			errs = append(errs, field.TooMany(addresses, len(e.Addresses), maxAddresses))
		}
		for j, a := range e.Addresses {
			errs = append(errs, validateAddress(a, addressType, addresses.Index(j))...)
		}
		if e.NodeName != nil {
			for _, msg := range apivalidation.NameIsDNSSubdomain(*e.NodeName, false) {
				errs = append(errs, field.Invalid(p.Child("nodeName"), *e.NodeName, msg))
			}
		}
		topology := p.Child("deprecatedTopology")
		if len(e.DeprecatedTopology) > maxTopologyLabels {
			errs = append(errs, field.TooMany(topology, len(e.DeprecatedTopology), maxTopologyLabels))
		}
		errs = append(errs, metav1validation.ValidateLabels(e.DeprecatedTopology, topology)...)
		if e.Hostname != nil {
			for _, msg := range validation.IsDNS1123Label(*e.Hostname) {
				errs = append(errs, field.Invalid(p.Child("hostname"), *e.Hostname, msg))
			}
		}
	}
	return errs
}

// validateAddress checks an address against the slice's address type;
// addresses of unknown types are left alone, as upstream does.
func validateAddress(a string, addressType discoveryv1.AddressType, path *field.Path) field.ErrorList {
	switch addressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		errs := netvalidation.IP(path, a)
		if len(errs) == 0 && (addressType == discoveryv1.AddressTypeIPv6) != strings.Contains(a, ":") {
			errs = field.ErrorList{field.Invalid(path, a, fmt.Sprintf("must be a valid %s address", addressType))}
		}
		if len(errs) > 0 {
			return errs
		}
		return netvalidation.NonSpecial(path, a, netvalidation.AllowLoopback)
	case discoveryv1.AddressTypeFQDN:
		return validation.IsFullyQualifiedDomainName(path, a)
	}
	return nil
}

func validatePorts(ports []discoveryv1.EndpointPort, path *field.Path) field.ErrorList {
	if len(ports) > maxPorts {
		return field.ErrorList{field.TooMany(path, len(ports), maxPorts)}
	}
	var errs field.ErrorList
	names := sets.New[string]()
	for i, port := range ports {
		p := path.Index(i)
		name := ptr.Deref(port.Name, "")
		if name != "" {
			for _, msg := range validation.IsDNS1123Label(name) {
				errs = append(errs, field.Invalid(p.Child("name"), name, msg))
			}
		}
		if names.Has(name) {
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		}
		names.Insert(name)
		errs = append(errs, netvalidation.ProtocolAndApp(ptr.Deref(port.Protocol, ""), port.AppProtocol, p)...)
	}
	return errs
}
