package server

import (
	"context"
	"fmt"
	"maps"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/serviceaccount"
	"github.com/skiff/skiff/pkg/volume/localpath"
)

// systemNamespaces exist in every cluster.
var systemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// kubernetesService names the Service (and its Endpoints and
// EndpointSlice) through which pods reach this API server.
const kubernetesService = "kubernetes"

// bootstrap creates the objects every cluster starts with, if missing: the
// system namespaces, the default service account of every namespace, the
// default "local-path" StorageClass (never overwritten once it exists), and
// the "kubernetes" Service (the first service IP, port 443 "https") with
// its Endpoints and EndpointSlice pointing at this API server at
// apiHost:cfg.HTTPSPort, which it keeps up to date across restarts.
func bootstrap(ctx context.Context, stores []*registry.Store, cfg Config, apiHost string) error {
	byName := map[string]*registry.Store{}
	for _, s := range stores {
		byName[s.Resource.GroupResource().String()] = s
	}
	for _, name := range systemNamespaces {
		_, err := byName["namespaces"].Create(ctx, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, registry.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	if err := ensureDefaultServiceAccounts(ctx, byName["namespaces"], byName["serviceaccounts"]); err != nil {
		return err
	}

	ip, err := firstServiceIP(cfg.ServiceCIDR)
	if err != nil {
		return err
	}
	port := int32(cfg.HTTPSPort)
	if err := reconcile(ctx, byName["services"], metav1.NamespaceDefault, kubernetesService, func(obj runtime.Object) {
		s := obj.(*corev1.Service)
		s.Labels = withLabels(s.Labels, map[string]string{"component": "apiserver", "provider": "kubernetes"})
		if s.Spec.ClusterIP == "" {
			s.Spec.ClusterIP = ip.String()
		}
		s.Spec.Ports = []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP}}
	}); err != nil {
		return err
	}
	if err := reconcile(ctx, byName["endpoints"], metav1.NamespaceDefault, kubernetesService, func(obj runtime.Object) {
		e := obj.(*corev1.Endpoints)
		// The endpointslice mirroring controller leaves this one alone: the
		// server writes the slice itself.
		e.Labels = withLabels(e.Labels, map[string]string{discoveryv1.LabelSkipMirror: "true"})
		e.Subsets = []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: apiHost}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}}
	}); err != nil {
		return err
	}
	if err := bootstrapClusterDNS(ctx, byName, cfg); err != nil {
		return err
	}
	if err := localpath.EnsureDefaultClass(ctx, func(ctx context.Context, sc *storagev1.StorageClass) error {
		_, err := byName["storageclasses.storage.k8s.io"].Create(ctx, "", sc, registry.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	addressType := discoveryv1.AddressTypeIPv4
	if net.ParseIP(apiHost).To4() == nil {
		addressType = discoveryv1.AddressTypeIPv6
	}
	return reconcile(ctx, byName["endpointslices.discovery.k8s.io"], metav1.NamespaceDefault, kubernetesService, func(obj runtime.Object) {
		s := obj.(*discoveryv1.EndpointSlice)
		s.Labels = withLabels(s.Labels, map[string]string{discoveryv1.LabelServiceName: kubernetesService, discoveryv1.LabelManagedBy: "skiff-apiserver"})
		s.AddressType = addressType
		s.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{apiHost}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}
		s.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}}
	})
}

// DNSService names the kube-system Service that holds the cluster DNS
// address (kube-dns, as upstream and k3s name it, so tools find it). Every
// node answers it itself (pkg/dns), so it has no selector or endpoints.
const DNSService = "kube-dns"

// bootstrapClusterDNS reserves --cluster-dns as the kube-dns Service's
// cluster IP and publishes the cluster's network settings for agents.
func bootstrapClusterDNS(ctx context.Context, byName map[string]*registry.Store, cfg Config) error {
	if err := reconcile(ctx, byName["services"], metav1.NamespaceSystem, DNSService, func(obj runtime.Object) {
		s := obj.(*corev1.Service)
		s.Labels = withLabels(s.Labels, map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "skiff-dns", "kubernetes.io/cluster-service": "true"})
		if s.Spec.ClusterIP == "" {
			s.Spec.ClusterIP = cfg.ClusterDNS
		}
		s.Spec.Ports = []corev1.ServicePort{
			{Name: "dns", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolTCP},
		}
	}); err != nil {
		return err
	}
	return reconcile(ctx, byName["configmaps"], metav1.NamespaceSystem, agent.ClusterConfigMap, func(obj runtime.Object) {
		cm := obj.(*corev1.ConfigMap)
		cm.Data = agent.ClusterSettings{ClusterCIDR: cfg.ClusterCIDR, ServiceCIDR: cfg.ServiceCIDR, ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain,
			NodeLeaseRenewInterval: cfg.controllerOptions().LeaseRenewInterval()}.Data()
	})
}

// ensureDefaultServiceAccounts gives every active namespace its default
// service account: the system namespaces on first start, and namespaces
// whose account is missing (created before skiff made them, or deleted).
func ensureDefaultServiceAccounts(ctx context.Context, namespaces, accounts *registry.Store) error {
	list, err := namespaces.List(ctx, "", &metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	existing, err := accounts.List(ctx, "", &metav1.ListOptions{FieldSelector: "metadata.name=" + serviceaccount.DefaultName})
	if err != nil {
		return fmt.Errorf("list service accounts: %w", err)
	}
	have := map[string]bool{}
	for _, sa := range existing.(*corev1.ServiceAccountList).Items {
		have[sa.Namespace] = true
	}
	for _, ns := range list.(*corev1.NamespaceList).Items {
		if have[ns.Name] || ns.Status.Phase == corev1.NamespaceTerminating {
			continue
		}
		if err := serviceaccount.EnsureDefault(ctx, accounts, ns.Name); err != nil {
			return fmt.Errorf("default service account of %s: %w", ns.Name, err)
		}
	}
	return nil
}

// reconcile makes the named object of st hold what apply sets: it creates
// the object when missing and writes it only when apply changed it.
func reconcile(ctx context.Context, st *registry.Store, ns, name string, apply func(runtime.Object)) error {
	_, _, err := st.Update(ctx, ns, name, func(_ context.Context, current runtime.Object) (runtime.Object, error) {
		obj := current
		if obj == nil {
			obj = st.Resource.New()
			acc, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			acc.SetName(name)
			acc.SetNamespace(ns)
		}
		apply(obj)
		return obj, nil
	}, registry.UpdateOptions{ForceAllowCreate: true})
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", st.Resource.GroupResource(), ns, name, err)
	}
	return nil
}

// withLabels returns labels with want added.
func withLabels(labels, want map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

// hostIP is the address other machines and pods reach this server at:
// --node-ip, else the bind address if one was given, else the host's
// outward address.
func hostIP(cfg Config) string {
	if ip := net.ParseIP(cfg.NodeIP); ip != nil {
		return ip.String()
	}
	if ip := net.ParseIP(cfg.BindAddress); ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	return agent.HostIP()
}
