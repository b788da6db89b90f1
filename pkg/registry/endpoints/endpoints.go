// Package endpoints is the registry strategy for core/v1 endpoints: the
// addresses and ports behind a Service, written by the endpoints
// controller (and, for the kubernetes Service, by the server itself).
package endpoints

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/netvalidation"
)

// NewResource describes the endpoints resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("endpoints"),
		Kind:                 "Endpoints",
		SingularName:         "endpoints",
		ShortNames:           []string{"ep"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.Endpoints{} },
		NewList:              func() runtime.Object { return &corev1.EndpointsList{} },
		Strategy:             strategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Endpoints", Type: "string", Description: corev1.Endpoints{}.SwaggerDoc()["subsets"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				e := obj.(*corev1.Endpoints)
				return []interface{}{e.Name, Format(e), registry.Age(e.CreationTimestamp, now)}
			},
		},
	}
}

// shown is how many endpoints the ENDPOINTS column lists before "+ N more...".
const shown = 3

// Format renders the ENDPOINTS column as upstream's printer does: ready
// address:port pairs, port by port, at most three of them and then
// "+ N more..."; "<none>" without subsets.
func Format(e *corev1.Endpoints) string {
	if len(e.Subsets) == 0 {
		return "<none>"
	}
	var list []string
	count := 0
	add := func(s string) {
		count++
		if len(list) < shown {
			list = append(list, s)
		}
	}
	for _, ss := range e.Subsets {
		if len(ss.Ports) == 0 {
			// Headless services may have no ports.
			for _, a := range ss.Addresses {
				add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	out := strings.Join(list, ",")
	if count > shown {
		out += fmt.Sprintf(" + %d more...", count-shown)
	}
	return out
}

type strategy struct{ registry.DefaultStrategy }

// AllowCreateOnUpdate implements registry.Strategy: controllers PUT
// endpoints whether or not they exist, as upstream allows.
func (strategy) AllowCreateOnUpdate() bool { return true }

// Default implements registry.Strategy: ports default to TCP.
func (strategy) Default(obj runtime.Object) {
	e := obj.(*corev1.Endpoints)
	for i := range e.Subsets {
		for j := range e.Subsets[i].Ports {
			if p := &e.Subsets[i].Ports[j]; p.Protocol == "" {
				p.Protocol = corev1.ProtocolTCP
			}
		}
	}
}

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.Endpoints))
}

// ValidateUpdate implements registry.Strategy.
func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.Endpoints))
}

// Validate checks endpoints as upstream's ValidateEndpoints does, except
// that loopback addresses are accepted (see netvalidation.AllowLoopback).
func Validate(e *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	for i, ss := range e.Subsets {
		p := field.NewPath("subsets").Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(p, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j := range ss.Addresses {
			errs = append(errs, validateAddress(&ss.Addresses[j], p.Child("addresses").Index(j))...)
		}
		for j := range ss.NotReadyAddresses {
			errs = append(errs, validateAddress(&ss.NotReadyAddresses[j], p.Child("notReadyAddresses").Index(j))...)
		}
		for j := range ss.Ports {
			errs = append(errs, validatePort(&ss.Ports[j], len(ss.Ports) > 1, p.Child("ports").Index(j))...)
		}
	}
	return errs
}

func validateAddress(a *corev1.EndpointAddress, path *field.Path) field.ErrorList {
	errs := netvalidation.IP(path.Child("ip"), a.IP)
	if a.Hostname != "" {
		for _, msg := range validation.IsDNS1123Label(a.Hostname) {
			errs = append(errs, field.Invalid(path.Child("hostname"), a.Hostname, msg))
		}
	}
	if a.NodeName != nil {
		for _, msg := range apivalidation.NameIsDNSSubdomain(*a.NodeName, false) {
			errs = append(errs, field.Invalid(path.Child("nodeName"), *a.NodeName, msg))
		}
	}
	return append(errs, netvalidation.NonSpecial(path.Child("ip"), a.IP, netvalidation.AllowLoopback)...)
}

func validatePort(p *corev1.EndpointPort, requireName bool, path *field.Path) field.ErrorList {
	return netvalidation.Port(p.Name, requireName, p.Port, p.Protocol, p.AppProtocol, path)
}
