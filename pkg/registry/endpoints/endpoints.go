// Package endpoints is the registry strategy for core/v1 endpoints.
package endpoints

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
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
				return []interface{}{e.Name, Format(e, 3), registry.Age(e.CreationTimestamp, now)}
			},
		},
	}
}

// Format renders ready endpoints as "ip:port,ip:port + N more...", showing
// at most max of them, as upstream's printer does.
func Format(e *corev1.Endpoints, max int) string {
	var out []string
	count := 0
	for _, ss := range e.Subsets {
		for _, addr := range ss.Addresses {
			if len(ss.Ports) == 0 {
				count++
				if len(out) < max {
					out = append(out, addr.IP)
				}
				continue
			}
			for _, p := range ss.Ports {
				count++
				if len(out) < max {
					out = append(out, net.JoinHostPort(addr.IP, strconv.Itoa(int(p.Port))))
				}
			}
		}
	}
	s := strings.Join(out, ",")
	if count > len(out) {
		s += fmt.Sprintf(" + %d more...", count-len(out))
	}
	if s == "" {
		return "<none>"
	}
	return s
}

type strategy struct{ registry.DefaultStrategy }

func (strategy) AllowCreateOnUpdate() bool { return true }

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.Endpoints))
}

func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validate(obj.(*corev1.Endpoints))
}

var protocols = []string{string(corev1.ProtocolSCTP), string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}

func validate(e *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	for i, ss := range e.Subsets {
		p := field.NewPath("subsets").Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(p, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j, a := range ss.Addresses {
			errs = append(errs, validation.IsValidIP(p.Child("addresses").Index(j).Child("ip"), a.IP)...)
		}
		for j, a := range ss.NotReadyAddresses {
			errs = append(errs, validation.IsValidIP(p.Child("notReadyAddresses").Index(j).Child("ip"), a.IP)...)
		}
		names := sets.New[string]()
		for j, port := range ss.Ports {
			pp := p.Child("ports").Index(j)
			if len(ss.Ports) > 1 && port.Name == "" {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else if port.Name != "" {
				for _, msg := range validation.IsDNS1123Label(port.Name) {
					errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
				}
				if names.Has(port.Name) {
					errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
				}
				names.Insert(port.Name)
			}
			for _, msg := range validation.IsValidPortNum(int(port.Port)) {
				errs = append(errs, field.Invalid(pp.Child("port"), port.Port, msg))
			}
			if !slices.Contains(protocols, string(port.Protocol)) {
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, protocols))
			}
		}
	}
	return errs
}
