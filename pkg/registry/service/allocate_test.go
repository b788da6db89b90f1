package service

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
)

// fakeReservations is a reservation key space for Allocate.
type fakeReservations map[string]bool

func (f fakeReservations) exists(key string) (bool, error) { return f[key], nil }

func newStrategy(t *testing.T) *strategy {
	t.Helper()
	res, err := NewResource(Config{ServiceCIDR: "10.43.0.0/24", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Strategy.(*strategy)
}

func prepared(typ corev1.ServiceType, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: typ, ClusterIP: clusterIP, Ports: ports}}
	Default(svc)
	PrepareForCreate(svc)
	return svc
}

func TestAllocateClusterIP(t *testing.T) {
	st := newStrategy(t)
	taken := fakeReservations{IPReservationPrefix + "10.43.0.20": true}
	cases := []struct {
		name      string
		svc       *corev1.Service
		wantIP    string
		wantError string
	}{
		{"auto", prepared(corev1.ServiceTypeClusterIP, "", corev1.ServicePort{Port: 80}), "", ""},
		{"requested", prepared(corev1.ServiceTypeClusterIP, "10.43.0.21", corev1.ServicePort{Port: 80}), "10.43.0.21", ""},
		{"headless", prepared(corev1.ServiceTypeClusterIP, "None"), "None", ""},
		{"taken", prepared(corev1.ServiceTypeClusterIP, "10.43.0.20", corev1.ServicePort{Port: 80}), "",
			`spec.clusterIPs[0]: Invalid value: "10.43.0.20": failed to allocate IP 10.43.0.20: provided IP is already allocated`},
		{"outside the range", prepared(corev1.ServiceTypeClusterIP, "10.44.0.1", corev1.ServicePort{Port: 80}), "",
			`spec.clusterIPs[0]: Invalid value: "10.44.0.1": failed to allocate IP 10.44.0.1: the provided IP (10.44.0.1) is not in the valid range. The range of valid IPs is 10.43.0.0/24`},
		{"network address", prepared(corev1.ServiceTypeClusterIP, "10.43.0.0", corev1.ServicePort{Port: 80}), "", "is not in the valid range"},
		{"IPv6 on an IPv4 cluster", func() *corev1.Service {
			s := prepared(corev1.ServiceTypeClusterIP, "", corev1.ServicePort{Port: 80})
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
			return s
		}(), "", `spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster`},
		{"dual stack required", func() *corev1.Service {
			s := prepared(corev1.ServiceTypeClusterIP, "", corev1.ServicePort{Port: 80})
			s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
			return s
		}(), "", `spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := st.Allocate(context.Background(), tc.svc, nil, taken.exists)
			if tc.wantError != "" {
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got %v, want 422 with %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := tc.svc.Spec
			if (tc.wantIP != "" && s.ClusterIP != tc.wantIP) || s.ClusterIP == "" || len(s.ClusterIPs) != 1 || s.ClusterIPs[0] != s.ClusterIP {
				t.Fatalf("cluster IPs %q %q, want %q", s.ClusterIP, s.ClusterIPs, tc.wantIP)
			}
			if *s.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || len(s.IPFamilies) != 1 || s.IPFamilies[0] != corev1.IPv4Protocol {
				t.Fatalf("families %v %v", s.IPFamilies, *s.IPFamilyPolicy)
			}
			if errs := Validate(tc.svc); len(errs) > 0 {
				t.Fatalf("allocated service invalid: %v", errs)
			}
		})
	}
}

func TestAllocateNodePorts(t *testing.T) {
	st := newStrategy(t)
	taken := fakeReservations{NodePortReservationPrefix + "30080": true}
	t.Run("auto, shared across protocols", func(t *testing.T) {
		svc := prepared(corev1.ServiceTypeNodePort, "", corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, corev1.ServicePort{Name: "dns-tcp", Port: 53}, corev1.ServicePort{Name: "web", Port: 80})
		if err := st.Allocate(context.Background(), svc, nil, taken.exists); err != nil {
			t.Fatal(err)
		}
		p := svc.Spec.Ports
		if p[0].NodePort == 0 || p[0].NodePort != p[1].NodePort || p[2].NodePort == p[0].NodePort || !st.ports.Contains(int(p[2].NodePort)) {
			t.Fatalf("node ports %d %d %d", p[0].NodePort, p[1].NodePort, p[2].NodePort)
		}
		if keys := st.Reservations(svc); len(keys) != 3 {
			t.Fatalf("reservations %v, want IP and two ports", keys)
		}
	})
	for _, tc := range []struct {
		name     string
		nodePort int32
		want     string
	}{
		{"taken", 30080, "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"},
		{"outside the range", 80, "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := prepared(corev1.ServiceTypeNodePort, "", corev1.ServicePort{Port: 80, NodePort: tc.nodePort})
			if err := st.Allocate(context.Background(), svc, nil, taken.exists); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("held by the stored object", func(t *testing.T) {
		old := prepared(corev1.ServiceTypeNodePort, "10.43.0.5", corev1.ServicePort{Port: 80, NodePort: 30080})
		held := fakeReservations{}
		for _, k := range st.Reservations(old) {
			held[k] = true
		}
		svc := old.DeepCopy()
		if err := st.Allocate(context.Background(), svc, old, held.exists); err != nil {
			t.Fatalf("an update must not collide with its own reservations: %v", err)
		}
	})
	t.Run("health check node port for LoadBalancer with Local policy", func(t *testing.T) {
		svc := prepared(corev1.ServiceTypeLoadBalancer, "", corev1.ServicePort{Port: 80})
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		if err := st.Allocate(context.Background(), svc, nil, taken.exists); err != nil {
			t.Fatal(err)
		}
		if hc := svc.Spec.HealthCheckNodePort; hc == 0 || hc == svc.Spec.Ports[0].NodePort {
			t.Fatalf("health check node port %d (node port %d)", hc, svc.Spec.Ports[0].NodePort)
		}
		if keys := st.Reservations(svc); len(keys) != 3 {
			t.Fatalf("reservations %v", keys)
		}
	})
	t.Run("LoadBalancer without node ports", func(t *testing.T) {
		svc := prepared(corev1.ServiceTypeLoadBalancer, "", corev1.ServicePort{Port: 80})
		svc.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
		if err := st.Allocate(context.Background(), svc, nil, taken.exists); err != nil || svc.Spec.Ports[0].NodePort != 0 {
			t.Fatalf("%v %d", err, svc.Spec.Ports[0].NodePort)
		}
	})
}

func TestReservationKeysAreCanonical(t *testing.T) {
	st := newStrategy(t)
	svc := prepared(corev1.ServiceTypeClusterIP, "::ffff:10.43.0.7", corev1.ServicePort{Port: 80})
	if keys := st.Reservations(svc); len(keys) != 1 || keys[0] != IPReservationPrefix+"10.43.0.7" {
		t.Fatalf("keys %v", keys)
	}
}
