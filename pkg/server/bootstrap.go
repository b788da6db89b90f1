package server

import (
	"context"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/pkg/registry"
)

// systemNamespaces exist in every cluster.
var systemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// bootstrap creates the objects every cluster starts with, if missing: the
// system namespaces and their default service accounts, and the
// "kubernetes" Service (the first service IP) with its endpoints pointing
// at this API server.
func bootstrap(ctx context.Context, stores []*registry.Store, cfg Config, apiHost string) error {
	byName := map[string]*registry.Store{}
	for _, s := range stores {
		byName[s.Resource.GroupResource().String()] = s
	}
	create := func(resource, ns string, obj runtime.Object) error {
		_, err := byName[resource].Create(ctx, ns, obj, registry.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s: %w", resource, err)
		}
		return nil
	}
	for _, name := range systemNamespaces {
		if err := create("namespaces", "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			return err
		}
		if err := create("serviceaccounts", name, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
			return err
		}
	}
	ip, err := firstServiceIP(cfg.ServiceCIDR)
	if err != nil {
		return err
	}
	port := int32(cfg.HTTPSPort)
	labels := map[string]string{"component": "apiserver", "provider": "kubernetes"}
	if err := create("services", metav1.NamespaceDefault, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Labels: labels},
		Spec: corev1.ServiceSpec{
			ClusterIP: ip.String(),
			Ports:     []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP}},
		},
	}); err != nil {
		return err
	}
	if err := create("endpoints", metav1.NamespaceDefault, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: apiHost}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}); err != nil {
		return err
	}
	ready, name, proto := true, "https", corev1.ProtocolTCP
	addressType := discoveryv1.AddressTypeIPv4
	if net.ParseIP(apiHost).To4() == nil {
		addressType = discoveryv1.AddressTypeIPv6
	}
	return create("endpointslices.discovery.k8s.io", metav1.NamespaceDefault, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "skiff-apiserver"}},
		AddressType: addressType,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{apiHost}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	})
}

// hostIP is the address other machines and pods reach this server at: the
// bind address if one was given, else the host's outward address.
func hostIP(cfg Config) string {
	if ip := net.ParseIP(cfg.BindAddress); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	return agent.HostIP()
}
