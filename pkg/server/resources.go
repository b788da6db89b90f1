package server

import (
	"fmt"
	"math/big"
	"net"
	"net/http"

	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/admission"
	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/configmap"
	"github.com/skiff/skiff/pkg/registry/namespace"
	"github.com/skiff/skiff/pkg/storage"
)

// buildStores creates the registry store of every served resource.
func buildStores(st storage.Store, clk clock.PassiveClock, cfg Config) ([]*registry.Store, error) {
	nsRes := namespace.NewResource(clk)
	nsStore := registry.NewStore(nsRes, st)
	nsRes.Subresources = append(nsRes.Subresources, namespace.FinalizeSubresource(nsStore))
	lifecycle := admission.NamespaceLifecycle{Get: admission.NamespaceGetterFrom(nsStore)}

	resources := []*registry.Resource{
		configmap.NewResource(),
	}
	stores := []*registry.Store{nsStore}
	for _, r := range resources {
		s := registry.NewStore(r, st, lifecycle)
		s.Clock = clk
		stores = append(stores, s)
	}
	nsStore.Clock = clk
	return stores, nil
}

// firstServiceIP is the first address of the service range, which the
// kubernetes Service (the API server) gets.
func firstServiceIP(cidr string) (net.IP, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	i := new(big.Int).SetBytes(n.IP)
	i.Add(i, big.NewInt(1))
	b := i.Bytes()
	ip := make(net.IP, len(n.IP))
	copy(ip[len(ip)-len(b):], b)
	if !n.Contains(ip) {
		return nil, fmt.Errorf("service CIDR %s too small", cidr)
	}
	return ip, nil
}

func openAPIHandler([]*registry.Store) http.Handler { return nil }
