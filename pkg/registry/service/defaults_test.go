package service

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestDefault(t *testing.T) {
	cluster := ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	cases := []struct {
		name string
		in   corev1.ServiceSpec
		want corev1.ServiceSpec
	}{{
		name: "cluster IP",
		in:   corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}, {Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}}},
		want: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: cluster,
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}, {Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}}},
	}, {
		name: "node port gets the external traffic policy",
		in:   corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort},
		want: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: cluster, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
	}, {
		name: "cluster IP with external IPs is externally accessible",
		in:   corev1.ServiceSpec{ExternalIPs: []string{"192.0.2.1"}},
		want: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: cluster, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster, ExternalIPs: []string{"192.0.2.1"}},
	}, {
		name: "load balancer",
		in:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		want: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: cluster,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster, AllocateLoadBalancerNodePorts: ptr.To(true)},
	}, {
		name: "external name has no traffic policies",
		in:   corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
		want: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com", SessionAffinity: corev1.ServiceAffinityNone},
	}, {
		name: "client IP affinity gets the 3h timeout",
		in:   corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP},
		want: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityClientIP, InternalTrafficPolicy: cluster,
			SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(10800))}}},
	}, {
		name: "no affinity drops the affinity config",
		in:   corev1.ServiceSpec{SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(5))}}},
		want: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: cluster},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{Spec: tc.in}
			Default(svc)
			if !apiequality.Semantic.DeepEqual(svc.Spec, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", svc.Spec, tc.want)
			}
		})
	}
}

func TestPrepareForUpdate(t *testing.T) {
	nodePort := func() *corev1.Service {
		return &corev1.Service{
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.43.0.10", ClusterIPs: []string{"10.43.0.10"},
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
				Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443, NodePort: 30443}}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}},
		}
	}
	t.Run("allocated values left out are patched in", func(t *testing.T) {
		old, svc := nodePort(), nodePort()
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
		svc.Spec.Ports[0].NodePort, svc.Spec.Ports[1].NodePort = 0, 0
		svc.Status = corev1.ServiceStatus{}
		PrepareForUpdate(svc, old)
		if svc.Spec.ClusterIP != "10.43.0.10" || len(svc.Spec.ClusterIPs) != 1 || svc.Spec.Ports[0].NodePort != 30080 || svc.Spec.Ports[1].NodePort != 30443 {
			t.Fatalf("not patched: %+v", svc.Spec)
		}
	})
	t.Run("to ClusterIP drops unchanged node ports, external policy and LB status", func(t *testing.T) {
		old, svc := nodePort(), nodePort()
		svc.Spec.Type = corev1.ServiceTypeClusterIP
		PrepareForUpdate(svc, old)
		if svc.Spec.Ports[0].NodePort != 0 || svc.Spec.Ports[1].NodePort != 0 || svc.Spec.ExternalTrafficPolicy != "" || len(svc.Status.LoadBalancer.Ingress) != 0 {
			t.Fatalf("type-dependent fields kept: %+v %+v", svc.Spec, svc.Status)
		}
	})
	t.Run("to ExternalName drops the cluster IP and families", func(t *testing.T) {
		old, svc := nodePort(), nodePort()
		svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
		PrepareForUpdate(svc, old)
		if svc.Spec.ClusterIP != "" || svc.Spec.ClusterIPs != nil || svc.Spec.IPFamilies != nil || svc.Spec.IPFamilyPolicy != nil {
			t.Fatalf("cluster IP kept: %+v", svc.Spec)
		}
	})
	t.Run("changing clusterIP alone moves clusterIPs with it", func(t *testing.T) {
		old, svc := nodePort(), nodePort()
		svc.Spec.ClusterIP = "10.43.0.11"
		PrepareForUpdate(svc, old)
		if svc.Spec.ClusterIPs[0] != "10.43.0.11" {
			t.Fatalf("clusterIPs not normalized: %v", svc.Spec.ClusterIPs)
		}
	})
}

func TestTableCells(t *testing.T) {
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalIPs: []string{"192.0.2.9"}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}, {IP: "192.0.2.5"}, {IP: "192.0.2.5"}}}}}
	cases := []struct {
		name              string
		svc               *corev1.Service
		ports, externalIP string
	}{
		{"node port", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: "TCP"}, {Port: 443, Protocol: "TCP"}}}}, "80:30080/TCP,443/TCP", "<none>"},
		{"headless without ports", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}, "<none>", "<none>"},
		{"external IPs", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ExternalIPs: []string{"192.0.2.1", "192.0.2.2"}, Ports: []corev1.ServicePort{{Port: 53, Protocol: "UDP"}}}}, "53/UDP", "192.0.2.1,192.0.2.2"},
		{"pending load balancer", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}, "<none>", "<pending>"},
		{"load balancer", lb, "<none>", "192.0.2.5,lb.example.com,192.0.2.9"},
		{"external name", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}}, "<none>", "db.example.com"},
	}
	for _, tc := range cases {
		if got := Ports(tc.svc); got != tc.ports {
			t.Errorf("%s: PORT(S) %q, want %q", tc.name, got, tc.ports)
		}
		if got := ExternalIP(tc.svc); got != tc.externalIP {
			t.Errorf("%s: EXTERNAL-IP %q, want %q", tc.name, got, tc.externalIP)
		}
	}
	res, err := NewResource(Config{ServiceCIDR: "10.43.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	row := res.Table.Row(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIPs: []string{corev1.ClusterIPNone}, Selector: map[string]string{"app": "web"}}}, metav1.Now().Time)
	if row[2] != "None" || row[6] != "app=web" || len(row) != len(res.Table.Columns) {
		t.Fatalf("row %v", row)
	}
}
