package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/endpoints"
	"github.com/skiff/skiff/pkg/registry/endpointslice"
	"github.com/skiff/skiff/pkg/registry/event"
	"github.com/skiff/skiff/pkg/registry/lease"
	"github.com/skiff/skiff/pkg/registry/node"
	"github.com/skiff/skiff/pkg/registry/persistentvolume"
	"github.com/skiff/skiff/pkg/registry/persistentvolumeclaim"
	"github.com/skiff/skiff/pkg/registry/secret"
	"github.com/skiff/skiff/pkg/registry/service"
	"github.com/skiff/skiff/pkg/registry/serviceaccount"
	"github.com/skiff/skiff/pkg/registry/storageclass"
)

// clusterResources adds nodes, networking, configuration, storage and
// coordination resources, and events (core/v1 and events.k8s.io/v1 over
// one storage). New namespaces get their default service account when
// they are created (see serviceaccount.WithDefaultAccount).
func clusterResources(b *builder) error {
	seed := uint64(time.Now().UnixNano())
	pick := rand.New(rand.NewPCG(seed, seed>>1))
	var pickMu sync.Mutex
	getter := func(gr string) func() service.Getter {
		return func() service.Getter { return b.find(gr) }
	}
	svc, err := service.NewResource(service.Config{ServiceCIDR: b.cfg.ServiceCIDR, Seed: seed, Proxy: service.ProxyConfig{
		Services: getter("services"), Endpoints: getter("endpoints"), Pods: getter("pods"),
		Backends: b.backends,
		Intn: func(n int) int {
			pickMu.Lock()
			defer pickMu.Unlock()
			return pick.IntN(n)
		},
	}})
	if err != nil {
		return fmt.Errorf("services: %w", err)
	}
	nodes := node.NewResource()
	nodes.Subresources = []registry.Subresource{node.ProxySubresource(b.kubelets.Kubelet)}
	for _, r := range []*registry.Resource{
		nodes,
		svc,
		endpoints.NewResource(),
		endpointslice.NewResource(),
		secret.NewResource(),
		persistentvolume.NewResource(b.clock),
		persistentvolumeclaim.NewResource(),
		lease.NewResource(),
		storageclass.NewResource(),
		event.NewResource(),
	} {
		b.add(r)
	}
	b.addWrapped(event.NewEventsV1Resource(), func() runtime.Object { return &corev1.Event{} }, event.NewConvertingStore)

	accounts := b.add(serviceaccount.NewResource())
	namespaces := b.find("namespaces")
	if namespaces == nil {
		return fmt.Errorf("service accounts: no namespaces resource")
	}
	namespaces.Storage = serviceaccount.WithDefaultAccount(namespaces.Storage, func(ctx context.Context, ns string) error {
		return serviceaccount.EnsureDefault(ctx, accounts, ns)
	}, b.log)
	return nil
}

// find returns the store of a group resource ("namespaces",
// "leases.coordination.k8s.io") added so far, or nil.
func (b *builder) find(groupResource string) *registry.Store {
	for _, s := range b.stores {
		if s.Resource.GroupResource().String() == groupResource {
			return s
		}
	}
	return nil
}
