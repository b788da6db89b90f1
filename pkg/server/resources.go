package server

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/admission"
	"github.com/skiff/skiff/pkg/openapi"
	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/configmap"
	"github.com/skiff/skiff/pkg/registry/event"
	"github.com/skiff/skiff/pkg/registry/limitrange"
	"github.com/skiff/skiff/pkg/registry/namespace"
	"github.com/skiff/skiff/pkg/registry/pod"
	"github.com/skiff/skiff/pkg/registry/proxy"
	"github.com/skiff/skiff/pkg/registry/resourcequota"
	"github.com/skiff/skiff/pkg/storage"
	"github.com/skiff/skiff/pkg/storage/cacher"
	"github.com/skiff/skiff/pkg/storage/etcd3"
)

// resourceSets contribute the served resources, one function per area;
// each adds its resources to the builder and wires their subresources.
var resourceSets = []func(b *builder) error{
	coreResources,
	clusterResources,
	workloadResources,
}

// builder collects registry stores while the resource sets run.
type builder struct {
	ctx     context.Context
	etcd    *etcd3.Store
	clock   clock.PassiveClock
	cfg     Config
	log     *slog.Logger
	cachers map[string]*cacher.Cacher
	// ttls are the storage prefixes whose objects expire, and after how
	// long (events), as upstream's per-resource TTL.
	ttls map[string]time.Duration
	// kubelets finds nodes' kubelets for the streaming subresources.
	kubelets pod.NodeLocator
	// backends reaches pods and service endpoints for the proxy
	// subresources.
	backends http.RoundTripper
	// admission runs on writes to every resource added after it is set.
	admission []registry.Admitter
	stores    []*registry.Store
}

// add creates and records the store of res, backed by the watch cache of
// its storage prefix.
func (b *builder) add(res *registry.Resource) *registry.Store {
	s := registry.NewStore(res, b.storageFor(registry.StoragePrefix(res), res.New), b.admission...)
	s.Clock = b.clock
	b.stores = append(b.stores, s)
	return s
}

// addWrapped is add for a resource whose objects are stored as another
// type: wrap adapts the prefix's storage to it.
func (b *builder) addWrapped(res *registry.Resource, newStored func() runtime.Object, wrap func(storage.Store) storage.Store) *registry.Store {
	s := registry.NewStore(res, wrap(b.storageFor(registry.StoragePrefix(res), newStored)), b.admission...)
	s.Clock = b.clock
	b.stores = append(b.stores, s)
	return s
}

// storageFor returns the watch cache of a storage prefix, started on first
// use; resources stored under one prefix share it. newObject returns an
// object of the stored type. Objects under a prefix in b.ttls expire.
func (b *builder) storageFor(prefix string, newObject func() runtime.Object) storage.Store {
	if c, ok := b.cachers[prefix]; ok {
		return c
	}
	delegate := b.etcd
	if ttl, ok := b.ttls[prefix]; ok {
		delegate = b.etcd.WithTTL(ttl)
	}
	c := cacher.New(cacher.Config{
		Delegate:         delegate,
		Prefix:           prefix + "/",
		NewObject:        newObject,
		BookmarkInterval: b.cfg.WatchBookmarkInterval,
		Log:              b.log,
	})
	b.cachers[prefix] = c
	go c.Run(b.ctx)
	return c
}

// store returns the store of a resource added earlier, or nil.
func (b *builder) store(group, resource string) *registry.Store {
	for _, s := range b.stores {
		if s.Resource.Group == group && s.Resource.Resource == resource {
			return s
		}
	}
	return nil
}

// ready reports whether every watch cache has loaded.
func (b *builder) ready() error {
	for prefix, c := range b.cachers {
		select {
		case <-c.Ready():
		default:
			return fmt.Errorf("watch cache %s not ready", prefix)
		}
	}
	return nil
}

// buildStores creates the registry store of every served resource; their
// watch caches run until ctx ends.
func buildStores(ctx context.Context, st *etcd3.Store, clk clock.PassiveClock, cfg Config, log *slog.Logger, certs *clusterCerts) (*builder, error) {
	b := &builder{ctx: ctx, etcd: st, clock: clk, cfg: cfg, log: log, cachers: map[string]*cacher.Cacher{},
		ttls: map[string]time.Duration{event.StoragePrefix: cfg.EventTTL}}
	locator, err := newKubeletLocator(func() *registry.Store { return b.store("", "nodes") }, certs)
	if err != nil {
		return nil, err
	}
	b.kubelets = locator
	b.backends = proxy.NewTransport()
	// Namespaces come first: the lifecycle admission of everything else
	// reads them.
	nsRes := namespace.NewResource(clk)
	nsStore := b.add(nsRes)
	nsRes.Subresources = append(nsRes.Subresources, namespace.FinalizeSubresource(nsStore))
	storageClasses := func() *registry.Store { return b.store("storage.k8s.io", "storageclasses") }
	// LimitRanger runs before ResourceQuota so defaulted requests are
	// charged; both find their stores once the resource sets added them.
	b.admission = []registry.Admitter{
		admission.NamespaceLifecycle{Get: admission.NamespaceGetterFrom(nsStore)},
		admission.LimitRanger{LimitRanges: func() *registry.Store { return b.store("", "limitranges") }},
		admission.ResourceQuota{Quotas: func() *registry.Store { return b.store("", "resourcequotas") }},
		admission.DefaultTolerationSeconds{NotReady: cfg.DefaultNotReadyTolerationSeconds, Unreachable: cfg.DefaultUnreachableTolerationSeconds},
		admission.StorageObjectInUseProtection{},
		admission.DefaultStorageClass{StorageClasses: storageClasses},
		admission.PersistentVolumeClaimResize{StorageClasses: storageClasses},
	}
	for _, set := range resourceSets {
		if err := set(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// coreResources adds the core/v1 resources without special wiring.
func coreResources(b *builder) error {
	b.add(configmap.NewResource())
	b.add(resourcequota.NewResource())
	b.add(limitrange.NewResource())
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

// openAPIHandler serves the OpenAPI documents of the served resources.
func openAPIHandler(stores []*registry.Store, version string) (http.Handler, error) {
	resources := make([]*registry.Resource, 0, len(stores))
	for _, s := range stores {
		resources = append(resources, s.Resource)
	}
	return openapi.Handler(resources, version)
}
