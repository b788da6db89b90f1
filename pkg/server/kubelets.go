package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// defaultKubeletPort is used when a node does not advertise its own.
const defaultKubeletPort = 10250

// kubeletLocator finds nodes' kubelets from their Node objects and reaches
// them with the API server's kubelet client certificate.
type kubeletLocator struct {
	nodes     func() *registry.Store
	transport http.RoundTripper
}

var _ pod.NodeLocator = kubeletLocator{}

func newKubeletLocator(nodes func() *registry.Store, certs *clusterCerts) (kubeletLocator, error) {
	client, err := certs.kubeletClient.TLS()
	if err != nil {
		return kubeletLocator{}, err
	}
	return kubeletLocator{nodes: nodes, transport: &http.Transport{
		// An explicit dialer matters for streams: the upgrade proxies
		// (apimachinery's DialURL, the SPDY round tripper) restrict the
		// TLS handshake to HTTP/1.1 only when the transport has one;
		// otherwise they reuse TLSClientConfig as it is, and once a plain
		// request (logs) has added "h2" to it, the kubelet may answer an
		// upgrade in HTTP/2.
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{Certificates: []tls.Certificate{client}, RootCAs: certs.ca.Pool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}}, nil
}

// Kubelet implements pod.NodeLocator.
func (l kubeletLocator) Kubelet(ctx context.Context, name string) (*url.URL, http.RoundTripper, error) {
	obj, err := l.nodes().Get(ctx, "", name, &metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, nil, err
	}
	n := obj.(*corev1.Node)
	addr := ""
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range n.Status.Addresses {
			if a.Type == t && addr == "" {
				addr = a.Address
			}
		}
	}
	if addr == "" {
		return nil, nil, fmt.Errorf("node %s has no address", name)
	}
	port := int(n.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = defaultKubeletPort
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(addr, strconv.Itoa(port))}, l.transport, nil
}
