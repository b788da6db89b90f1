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

// resourceSets contribute the served resources, one function per area;
// each adds its resources to the builder and wires their subresources.
var resourceSets = []func(b *builder) error{
	coreResources,
}

// builder collects registry stores while the resource sets run.
type builder struct {
	storage storage.Store
	clock   clock.PassiveClock
	cfg     Config
	// admission runs on writes to every resource added after it is set.
	admission []registry.Admitter
	stores    []*registry.Store
}

// add creates and records the store of res.
func (b *builder) add(res *registry.Resource) *registry.Store {
	s := registry.NewStore(res, b.storage, b.admission...)
	s.Clock = b.clock
	b.stores = append(b.stores, s)
	return s
}

// buildStores creates the registry store of every served resource.
func buildStores(st storage.Store, clk clock.PassiveClock, cfg Config) ([]*registry.Store, error) {
	b := &builder{storage: st, clock: clk, cfg: cfg}
	// Namespaces come first: the lifecycle admission of everything else
	// reads them.
	nsRes := namespace.NewResource(clk)
	nsStore := b.add(nsRes)
	nsRes.Subresources = append(nsRes.Subresources, namespace.FinalizeSubresource(nsStore))
	b.admission = []registry.Admitter{admission.NamespaceLifecycle{Get: admission.NamespaceGetterFrom(nsStore)}}
	for _, set := range resourceSets {
		if err := set(b); err != nil {
			return nil, err
		}
	}
	return b.stores, nil
}

// coreResources adds the core/v1 resources without special wiring.
func coreResources(b *builder) error {
	b.add(configmap.NewResource())
	return nil
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
