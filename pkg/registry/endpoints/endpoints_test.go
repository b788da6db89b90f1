package endpoints

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func addrs(ips ...string) []corev1.EndpointAddress {
	var out []corev1.EndpointAddress
	for _, ip := range ips {
		out = append(out, corev1.EndpointAddress{IP: ip})
	}
	return out
}

func TestFormat(t *testing.T) {
	cases := []struct {
		name    string
		subsets []corev1.EndpointSubset
		want    string
	}{
		{"no subsets", nil, "<none>"},
		{"only not ready", []corev1.EndpointSubset{{NotReadyAddresses: addrs("10.42.0.5"), Ports: []corev1.EndpointPort{{Port: 80}}}}, ""},
		{"two", []corev1.EndpointSubset{{Addresses: addrs("10.42.0.5", "10.42.0.6"), Ports: []corev1.EndpointPort{{Port: 8080}}}}, "10.42.0.5:8080,10.42.0.6:8080"},
		{"more", []corev1.EndpointSubset{{Addresses: addrs("10.42.0.5", "10.42.0.6", "10.42.0.7", "10.42.0.8"), Ports: []corev1.EndpointPort{{Port: 8080}}}}, "10.42.0.5:8080,10.42.0.6:8080,10.42.0.7:8080 + 1 more..."},
		{"port by port", []corev1.EndpointSubset{{Addresses: addrs("10.42.0.5", "10.42.0.6"), Ports: []corev1.EndpointPort{{Name: "a", Port: 80}, {Name: "b", Port: 443}}}}, "10.42.0.5:80,10.42.0.6:80,10.42.0.5:443 + 1 more..."},
		{"headless without ports", []corev1.EndpointSubset{{Addresses: addrs("10.42.0.5")}}, "10.42.0.5"},
		{"IPv6", []corev1.EndpointSubset{{Addresses: addrs("fd00::5"), Ports: []corev1.EndpointPort{{Port: 80}}}}, "[fd00::5]:80"},
	}
	for _, tc := range cases {
		if got := Format(&corev1.Endpoints{Subsets: tc.subsets}); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		subset corev1.EndpointSubset
		want   []string
	}{
		{"valid", corev1.EndpointSubset{Addresses: addrs("10.42.0.5"), Ports: []corev1.EndpointPort{{Port: 80, Protocol: "TCP"}}}, nil},
		{"loopback is accepted", corev1.EndpointSubset{Addresses: addrs("127.0.0.1"), Ports: []corev1.EndpointPort{{Port: 6443, Protocol: "TCP"}}}, nil},
		{"no addresses", corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Port: 80, Protocol: "TCP"}}}, []string{"subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"}},
		{"not an IP", corev1.EndpointSubset{NotReadyAddresses: addrs("pod-a")}, []string{
			`subsets[0].notReadyAddresses[0].ip: Invalid value: "pod-a": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`,
			`subsets[0].notReadyAddresses[0].ip: Invalid value: "pod-a": must be a valid IP address`}},
		{"link-local", corev1.EndpointSubset{Addresses: addrs("169.254.169.254")}, []string{
			`subsets[0].addresses[0].ip: Invalid value: "169.254.169.254": may not be in the link-local range (169.254.0.0/16, fe80::/10)`}},
		{"ports", corev1.EndpointSubset{Addresses: addrs("10.42.0.5"), Ports: []corev1.EndpointPort{{Port: 0, Protocol: "TCP"}, {Name: "b", Port: 80, Protocol: "ICMP"}}}, []string{
			"subsets[0].ports[0].name: Required value",
			"subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
			`subsets[0].ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"`}},
	}
	for _, tc := range cases {
		e := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{tc.subset}}
		validationtest.Expect(t, tc.name, Validate(e), tc.want)
	}
}
