package service_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff/skiff/pkg/server"
	"github.com/skiff/skiff/pkg/server/servertest"
)

func svc(name string, typ corev1.ServiceType, ip string, nodePort int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: typ, ClusterIP: ip, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: nodePort}}},
	}
}

func TestAllocation(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.ServiceCIDR = "10.96.0.0/24" })
	ctx := context.Background()
	svcs := srv.Client.CoreV1().Services("default")

	k, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || k.Spec.ClusterIP != "10.96.0.1" || len(k.Spec.Ports) != 1 || k.Spec.Ports[0].Name != "https" || k.Spec.Ports[0].Port != 443 ||
		k.Spec.Ports[0].TargetPort.IntValue() != srv.Port || k.Spec.Selector != nil {
		t.Fatalf("kubernetes service: %v %+v", err, k)
	}
	ep, err := srv.Client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || len(ep.Subsets) != 1 || ep.Subsets[0].Addresses[0].IP != "127.0.0.1" || ep.Subsets[0].Ports[0].Port != int32(srv.Port) {
		t.Fatalf("kubernetes endpoints: %v %+v", err, ep)
	}
	slices, err := srv.Client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
	if err != nil || len(slices.Items) != 1 || slices.Items[0].Endpoints[0].Addresses[0] != "127.0.0.1" || *slices.Items[0].Ports[0].Port != int32(srv.Port) {
		t.Fatalf("kubernetes endpointslice: %v %+v", err, slices)
	}
	k.ResourceVersion = ""
	if _, err := svcs.Create(ctx, k, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("re-creating a service that holds its IP: %v, want AlreadyExists", err)
	}
	auto, err := svcs.Create(ctx, svc("auto", corev1.ServiceTypeNodePort, "", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if auto.Spec.ClusterIP == "" || auto.Spec.Ports[0].NodePort < 30000 || auto.Spec.Ports[0].NodePort > 32767 {
		t.Fatalf("auto allocation: %+v", auto.Spec)
	}
	if auto.Spec.SessionAffinity != corev1.ServiceAffinityNone || auto.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || len(auto.Spec.IPFamilies) != 1 {
		t.Fatalf("defaults: %+v", auto.Spec)
	}

	if _, err := svcs.Create(ctx, svc("dup", corev1.ServiceTypeClusterIP, auto.Spec.ClusterIP, 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided IP is already allocated") {
		t.Fatalf("taken IP: %v", err)
	}
	if _, err := svcs.Create(ctx, svc("dupport", corev1.ServiceTypeNodePort, "", auto.Spec.Ports[0].NodePort), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided port is already allocated") {
		t.Fatalf("taken node port: %v", err)
	}
	if _, err := svcs.Create(ctx, svc("outside", corev1.ServiceTypeClusterIP, "10.1.2.3", 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "not in the valid range") {
		t.Fatalf("IP outside the range: %v", err)
	}
	if _, err := svcs.Create(ctx, svc("badport", corev1.ServiceTypeNodePort, "", 80), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "30000-32767") {
		t.Fatalf("node port outside the range: %v", err)
	}

	// Deleting releases the IP: it can be asked for again.
	if err := svcs.Delete(ctx, "auto", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again, err := svcs.Create(ctx, svc("again", corev1.ServiceTypeNodePort, auto.Spec.ClusterIP, auto.Spec.Ports[0].NodePort), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("released IP and port not reusable: %v", err)
	}
	// A replace without clusterIP keeps the allocated one.
	again.Spec.ClusterIP, again.Spec.ClusterIPs = "", nil
	again.Spec.Ports[0].NodePort = 0
	updated, err := svcs.Update(ctx, again, metav1.UpdateOptions{})
	if err != nil || updated.Spec.ClusterIP != auto.Spec.ClusterIP || updated.Spec.Ports[0].NodePort != auto.Spec.Ports[0].NodePort {
		t.Fatalf("update without allocated values: %v %+v", err, updated)
	}
	// NodePort -> ClusterIP releases the node port.
	updated.Spec.Type = corev1.ServiceTypeClusterIP
	updated.Spec.ExternalTrafficPolicy = ""
	if updated, err = svcs.Update(ctx, updated, metav1.UpdateOptions{}); err != nil || updated.Spec.Ports[0].NodePort != 0 {
		t.Fatalf("to ClusterIP: %v %+v", err, updated)
	}
	if _, err := svcs.Create(ctx, svc("port-reuse", corev1.ServiceTypeNodePort, "", auto.Spec.Ports[0].NodePort), metav1.CreateOptions{}); err != nil {
		t.Fatalf("node port not released by the type change: %v", err)
	}
	headless, err := svcs.Create(ctx, svc("headless", corev1.ServiceTypeClusterIP, corev1.ClusterIPNone, 0), metav1.CreateOptions{})
	if err != nil || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Fatalf("headless: %v %+v", err, headless)
	}

	// To ExternalName releases the IP; back to ClusterIP allocates one.
	ip := updated.Spec.ClusterIP
	updated.Spec.Type, updated.Spec.ExternalName = corev1.ServiceTypeExternalName, "db.example.com"
	if updated, err = svcs.Update(ctx, updated, metav1.UpdateOptions{}); err != nil || updated.Spec.ClusterIP != "" || updated.Spec.ClusterIPs != nil {
		t.Fatalf("to ExternalName: %v %+v", err, updated)
	}
	if _, err := svcs.Create(ctx, svc("ip-reuse", corev1.ServiceTypeClusterIP, ip, 0), metav1.CreateOptions{}); err != nil {
		t.Fatalf("IP not released by the change to ExternalName: %v", err)
	}
	updated.Spec.Type, updated.Spec.ExternalName = corev1.ServiceTypeClusterIP, ""
	if updated, err = svcs.Update(ctx, updated, metav1.UpdateOptions{}); err != nil || updated.Spec.ClusterIP == "" || updated.Spec.ClusterIP == ip {
		t.Fatalf("back to ClusterIP: %v %+v", err, updated)
	}

	// LoadBalancer with the Local policy gets a health check node port.
	lb := svc("lb", corev1.ServiceTypeLoadBalancer, "", 0)
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if lb, err = svcs.Create(ctx, lb, metav1.CreateOptions{}); err != nil || lb.Spec.HealthCheckNodePort == 0 || lb.Spec.Ports[0].NodePort == 0 {
		t.Fatalf("load balancer: %v %+v", err, lb)
	}
}

func TestConcurrentCreatesGetUniqueIPs(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.ServiceCIDR = "10.97.0.0/24" })
	ctx := context.Background()
	const n = 200
	ips := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := srv.Client.CoreV1().Services("default").Create(ctx, svc("s"+strconv.Itoa(i), corev1.ServiceTypeClusterIP, "", 0), metav1.CreateOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			ips[i] = s.Spec.ClusterIP
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ip := range ips {
		if ip == "" {
			continue
		}
		if seen[ip] {
			t.Fatalf("IP %s handed out twice", ip)
		}
		seen[ip] = true
	}
	if len(seen) != n {
		t.Fatalf("%d services got IPs, want %d", len(seen), n)
	}
}
