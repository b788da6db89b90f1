package endpointslice

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func TestColumns(t *testing.T) {
	eps := []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.5"}}, {Addresses: []string{"10.42.0.6", "10.42.0.7"}}, {Addresses: []string{"10.42.0.8"}}}
	if got, want := FormatEndpoints(eps), "10.42.0.5,10.42.0.6,10.42.0.7 + 1 more..."; got != want {
		t.Errorf("endpoints %q, want %q", got, want)
	}
	if got := FormatEndpoints(nil); got != "<unset>" {
		t.Errorf("no endpoints: %q", got)
	}
	ports := []discoveryv1.EndpointPort{{Port: ptr.To(int32(80))}, {Name: ptr.To("metrics")}, {}, {Port: ptr.To(int32(443))}}
	if got, want := FormatPorts(ports), "80,metrics,* + 1 more..."; got != want {
		t.Errorf("ports %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		slice discoveryv1.EndpointSlice
		want  []string
	}{
		{"valid", discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.5"}}}}, nil},
		{"address type required", discoveryv1.EndpointSlice{}, []string{"addressType: Required value"}},
		{"unknown address type", discoveryv1.EndpointSlice{AddressType: "IPX"}, []string{`addressType: Unsupported value: "IPX": supported values: "FQDN", "IPv4", "IPv6"`}},
		{"no addresses", discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{}}}, []string{
			"endpoints[0].addresses: Required value: must contain at least 1 address"}},
		{"wrong family", discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"fd00::1"}}}}, []string{
			`endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address`}},
		{"unspecified", discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv6, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"::"}}}}, []string{
			`endpoints[0].addresses[0]: Invalid value: "::": may not be unspecified (::)`}},
		{"ports", discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeFQDN, Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("http"), Protocol: ptr.To[corev1.Protocol]("TCP")},
			{Name: ptr.To("http"), Protocol: ptr.To[corev1.Protocol]("TCP")},
			{Name: ptr.To("x"), Protocol: ptr.To[corev1.Protocol]("ICMP")},
			{Name: ptr.To("y")},
		}}, []string{
			`ports[1].name: Duplicate value: "http"`,
			`ports[2].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`,
			"ports[3].protocol: Required value"}},
	}
	for _, tc := range cases {
		validationtest.Expect(t, tc.name, Validate(&tc.slice), tc.want)
	}
}
