package kubelet

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPortMappingsCarryHostIPAndProtocol(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
		{ContainerPort: 8080, HostPort: 54323, HostIP: "127.0.0.1"},
		{ContainerPort: 8081, HostPort: 54323, HostIP: "10.0.0.5", Protocol: corev1.ProtocolUDP},
		{ContainerPort: 9090}, // no host port
	}}}}}
	got := portMappings(pod)
	want := []*runtimeapi.PortMapping{
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 54323, HostIp: "127.0.0.1"},
		{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 8081, HostPort: 54323, HostIp: "10.0.0.5"},
	}
	if len(got) != len(want) {
		t.Fatalf("portMappings = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Errorf("mapping %d = %v, want %v", i, got[i], want[i])
		}
	}
	pod.Spec.HostNetwork = true
	if got := portMappings(pod); len(got) != 0 {
		t.Errorf("host-network pod got mappings %v", got)
	}
}
