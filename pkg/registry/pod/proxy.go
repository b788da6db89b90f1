package pod

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/proxy"
)

// proxyHandler serves pods/proxy: id is "pod", "pod:port" or
// "scheme:pod:port"; without a port the pod's first declared container
// port is used, as upstream does.
func proxyHandler(ctx context.Context, store *registry.Store, transport http.RoundTripper, ns, id string, opts url.Values) (http.Handler, error) {
	loc, err := proxyLocation(ctx, store, ns, id)
	if err != nil {
		return nil, err
	}
	return proxy.Handler(loc, opts.Get(proxy.PathParam), transport), nil
}

func proxyLocation(ctx context.Context, store *registry.Store, ns, id string) (*url.URL, error) {
	scheme, name, port, err := proxy.SplitName("pod", id)
	if err != nil {
		return nil, err
	}
	obj, err := store.Get(ctx, ns, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	p := obj.(*corev1.Pod)
	if port == "" {
		for _, c := range p.Spec.Containers {
			if len(c.Ports) > 0 {
				port = strconv.Itoa(int(c.Ports[0].ContainerPort))
				break
			}
		}
	}
	ip := net.ParseIP(p.Status.PodIP)
	if ip == nil || !ip.IsGlobalUnicast() {
		return nil, apierrors.NewBadRequest("address not allowed")
	}
	loc := &url.URL{Scheme: scheme, Host: p.Status.PodIP}
	if port != "" {
		loc.Host = net.JoinHostPort(p.Status.PodIP, port)
	} else if ip.To4() == nil {
		loc.Host = "[" + p.Status.PodIP + "]"
	}
	return loc, nil
}
