package endpoints

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestRepackMergesSubsetsAsUpstream(t *testing.T) {
	p80 := []corev1.EndpointPort{{Name: "a", Port: 80, Protocol: corev1.ProtocolTCP}}
	p81 := []corev1.EndpointPort{{Name: "b", Port: 81, Protocol: corev1.ProtocolTCP}}
	got := Repack([]corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.2"}, {IP: "10.0.0.1"}}, Ports: p80},
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}, NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.0.0.2"}}, Ports: p81},
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.3"}}, Ports: p80},
	})
	// Port a: 1, 2, 3 ready; port b: 1 ready, 2 not ready.
	if len(got) != 2 {
		t.Fatalf("Repack = %+v, want two subsets", got)
	}
	if a := got[0]; a.Ports[0].Name != "a" || len(a.Addresses) != 3 || a.Addresses[0].IP != "10.0.0.1" || len(a.NotReadyAddresses) != 0 {
		t.Errorf("subset of port a = %+v", a)
	}
	if b := got[1]; b.Ports[0].Name != "b" || len(b.Addresses) != 1 || len(b.NotReadyAddresses) != 1 || b.NotReadyAddresses[0].IP != "10.0.0.2" {
		t.Errorf("subset of port b = %+v", b)
	}
}
