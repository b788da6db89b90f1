package service

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/proxy"
)

// Getter reads one object (a registry.Store).
type Getter interface {
	Get(ctx context.Context, ns, name string, opts *metav1.GetOptions) (runtime.Object, error)
}

// ProxyConfig is what services/proxy reads.
type ProxyConfig struct {
	Services, Endpoints, Pods func() Getter
	// Backends is the transport to the endpoints.
	Backends http.RoundTripper
	// Intn picks a random index in [0, n): where the search for a ready
	// endpoint starts.
	Intn func(n int) int
}

// ProxySubresource returns services/proxy: .../services/ID/proxy/PATH
// with ID "svc", "svc:port" or "scheme:svc:port" (port is the service
// port's name or number) goes to a ready endpoint of that port, picked at
// random among the addresses that are pods, as upstream does.
func ProxySubresource(cfg ProxyConfig) registry.Subresource {
	return registry.Subresource{Name: "proxy", Kind: "ServiceProxyOptions", Verbs: proxy.Verbs, TakesPath: true,
		Connect: func(ctx context.Context, ns, id string, opts url.Values) (http.Handler, error) {
			loc, err := cfg.location(ctx, ns, id)
			if err != nil {
				return nil, err
			}
			return proxy.Handler(loc, opts.Get(proxy.PathParam), cfg.Backends), nil
		}}
}

func (cfg ProxyConfig) location(ctx context.Context, ns, id string) (*url.URL, error) {
	scheme, name, port, err := proxy.SplitName("service", id)
	if err != nil {
		return nil, err
	}
	obj, err := cfg.Services().Get(ctx, ns, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	svc := obj.(*corev1.Service)
	if num, err := strconv.Atoi(port); err == nil {
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == num })
		if i < 0 {
			return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", num, name))
		}
		port = svc.Spec.Ports[i].Name
	}
	obj, err = cfg.Endpoints().Get(ctx, ns, name, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", name))
	}
	if err != nil {
		return nil, err
	}
	subsets := obj.(*corev1.Endpoints).Subsets
	if len(subsets) == 0 {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", name))
	}
	ssStart := cfg.Intn(len(subsets))
	for i := range subsets {
		ss := subsets[(ssStart+i)%len(subsets)]
		if len(ss.Addresses) == 0 {
			continue
		}
		for _, p := range ss.Ports {
			if p.Name != port {
				continue
			}
			start := cfg.Intn(len(ss.Addresses))
			for j := range ss.Addresses {
				addr := ss.Addresses[(start+j)%len(ss.Addresses)]
				if !cfg.isPod(ctx, ns, addr) {
					continue
				}
				return &url.URL{Scheme: scheme, Host: net.JoinHostPort(addr.IP, strconv.Itoa(int(p.Port)))}, nil
			}
		}
	}
	return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", id))
}

// isPod reports whether an endpoint address is a pod that has its IP:
// the proxy reaches only pods.
func (cfg ProxyConfig) isPod(ctx context.Context, ns string, addr corev1.EndpointAddress) bool {
	ref := addr.TargetRef
	if ref == nil || ref.Kind != "Pod" {
		return false
	}
	if ref.Namespace != "" {
		ns = ref.Namespace
	}
	obj, err := cfg.Pods().Get(ctx, ns, ref.Name, &metav1.GetOptions{})
	if err != nil {
		return false
	}
	p := obj.(*corev1.Pod)
	return slices.ContainsFunc(p.Status.PodIPs, func(ip corev1.PodIP) bool { return ip.IP == addr.IP })
}
