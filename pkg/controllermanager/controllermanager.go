// Package controllermanager runs skiff's controllers over shared
// informers: Deployment, ReplicaSet, ReplicationController, DaemonSet,
// Endpoints, EndpointSlice, EndpointSlice mirroring, service load
// balancer, garbage collector, Job, CronJob, TTL-after-finished, node
// IPAM (pod ranges), node lifecycle, taint eviction, pod GC, disruption
// (PodDisruptionBudget status), namespace,
// serviceaccounts, the root CA publisher, the PersistentVolume binder and
// the PV and PVC protection controllers.
// `skiff server` runs it while it holds the
// kube-system/kube-controller-manager Lease.
package controllermanager

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/cronjob"
	"github.com/skiff/skiff/pkg/controller/daemonset"
	"github.com/skiff/skiff/pkg/controller/deployment"
	"github.com/skiff/skiff/pkg/controller/disruption"
	"github.com/skiff/skiff/pkg/controller/endpoints"
	"github.com/skiff/skiff/pkg/controller/endpointslice"
	"github.com/skiff/skiff/pkg/controller/endpointslicemirroring"
	"github.com/skiff/skiff/pkg/controller/garbagecollector"
	"github.com/skiff/skiff/pkg/controller/job"
	"github.com/skiff/skiff/pkg/controller/namespace"
	"github.com/skiff/skiff/pkg/controller/nodeipam"
	"github.com/skiff/skiff/pkg/controller/nodelifecycle"
	"github.com/skiff/skiff/pkg/controller/podgc"
	"github.com/skiff/skiff/pkg/controller/recorder"
	"github.com/skiff/skiff/pkg/controller/replicaset"
	"github.com/skiff/skiff/pkg/controller/resourcequota"
	"github.com/skiff/skiff/pkg/controller/rootcacert"
	"github.com/skiff/skiff/pkg/controller/serviceaccount"
	"github.com/skiff/skiff/pkg/controller/servicelb"
	"github.com/skiff/skiff/pkg/controller/statefulset"
	"github.com/skiff/skiff/pkg/controller/tainteviction"
	"github.com/skiff/skiff/pkg/controller/ttlafterfinished"
	"github.com/skiff/skiff/pkg/controller/volume/persistentvolume"
	"github.com/skiff/skiff/pkg/controller/volume/pvcprotection"
	"github.com/skiff/skiff/pkg/controller/volume/pvprotection"
)

// Config is what the controllers need to know of the cluster.
type Config struct {
	// REST reaches the API server with the controller manager's
	// credentials.
	REST *rest.Config
	// RootCA is the cluster CA certificate (PEM) published to every
	// namespace.
	RootCA []byte
	// ClusterCIDR is the pod network Nodes get their ranges from; empty
	// allocates none.
	ClusterCIDR string
	// NodeCIDRMaskSize is the prefix length of each Node's range
	// (default nodeipam.DefaultMaskSize).
	NodeCIDRMaskSize int
	// Options are the --kube-controller-manager-arg settings; the zero
	// value means DefaultOptions.
	Options *Options
}

// Run starts the controllers and runs them until ctx ends.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	cfg := c.REST
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cached := memory.NewMemCacheClient(disc)
	f := informers.NewSharedInformerFactory(client, 0)
	ns, err := namespace.New(client, dyn, cached, f, log.With("controller", "namespace"))
	if err != nil {
		return fmt.Errorf("namespace controller: %w", err)
	}
	sa, err := serviceaccount.New(client, f, log.With("controller", "serviceaccount"))
	if err != nil {
		return fmt.Errorf("serviceaccount controller: %w", err)
	}
	ca, err := rootcacert.New(client, c.RootCA, f, log.With("controller", "root-ca-cert-publisher"))
	if err != nil {
		return fmt.Errorf("root CA publisher: %w", err)
	}
	rq, err := resourcequota.New(client, f, log.With("controller", "resourcequota"))
	if err != nil {
		return fmt.Errorf("resourcequota controller: %w", err)
	}
	rs, err := replicaset.NewReplicaSet(client, f, clock.RealClock{}, log.With("controller", "replicaset"))
	if err != nil {
		return fmt.Errorf("replicaset controller: %w", err)
	}
	rc, err := replicaset.NewReplicationController(client, f, clock.RealClock{}, log.With("controller", "replicationcontroller"))
	if err != nil {
		return fmt.Errorf("replicationcontroller controller: %w", err)
	}
	ds, err := daemonset.New(client, f, clock.RealClock{}, log.With("controller", "daemonset"))
	if err != nil {
		return fmt.Errorf("daemonset controller: %w", err)
	}
	sts, err := statefulset.New(client, f, clock.RealClock{}, log.With("controller", "statefulset"))
	if err != nil {
		return fmt.Errorf("statefulset controller: %w", err)
	}
	pdbs, err := disruption.New(client, f, clock.RealClock{}, log.With("controller", "disruption"))
	if err != nil {
		return fmt.Errorf("disruption controller: %w", err)
	}
	deploy, err := deployment.New(client, f, clock.RealClock{}, log.With("controller", "deployment"))
	if err != nil {
		return fmt.Errorf("deployment controller: %w", err)
	}
	eps, err := endpoints.New(client, f, clock.RealClock{}, log.With("controller", "endpoints"))
	if err != nil {
		return fmt.Errorf("endpoints controller: %w", err)
	}
	slices, err := endpointslice.New(client, f, clock.RealClock{}, log.With("controller", "endpointslice"))
	if err != nil {
		return fmt.Errorf("endpointslice controller: %w", err)
	}
	mirror, err := endpointslicemirroring.New(client, f, clock.RealClock{}, log.With("controller", "endpointslicemirroring"))
	if err != nil {
		return fmt.Errorf("endpointslice mirroring controller: %w", err)
	}
	lb, err := servicelb.New(client, f, log.With("controller", "servicelb"))
	if err != nil {
		return fmt.Errorf("service load balancer controller: %w", err)
	}
	jobs, err := job.New(client, f, clock.RealClock{}, log.With("controller", "job"))
	if err != nil {
		return fmt.Errorf("job controller: %w", err)
	}
	cj, err := cronjob.New(client, f, clock.RealClock{}, log.With("controller", "cronjob"))
	if err != nil {
		return fmt.Errorf("cronjob controller: %w", err)
	}
	ttl, err := ttlafterfinished.New(client, f, clock.RealClock{}, log.With("controller", "ttl-after-finished"))
	if err != nil {
		return fmt.Errorf("ttl-after-finished controller: %w", err)
	}
	binder, err := persistentvolume.New(client, f, clock.RealClock{}, log.With("controller", "persistentvolume-binder"))
	if err != nil {
		return fmt.Errorf("persistentvolume binder: %w", err)
	}
	pvcProt, err := pvcprotection.New(client, f, clock.RealClock{}, log.With("controller", "pvc-protection"))
	if err != nil {
		return fmt.Errorf("pvc protection controller: %w", err)
	}
	pvProt, err := pvprotection.New(client, f, clock.RealClock{}, log.With("controller", "pv-protection"))
	if err != nil {
		return fmt.Errorf("pv protection controller: %w", err)
	}
	opts := DefaultOptions()
	if c.Options != nil {
		opts = *c.Options
	}
	rec, stopRec := recorder.Start(ctx, client, "node-controller")
	defer stopRec()
	lifecycle, err := nodelifecycle.New(client, f, opts.NodeLifecycle, clock.RealClock{}, rec, log.With("controller", "node-lifecycle"))
	if err != nil {
		return fmt.Errorf("node lifecycle controller: %w", err)
	}
	taints, err := tainteviction.New(client, f, clock.RealClock{}, rec, log.With("controller", "taint-eviction"))
	if err != nil {
		return fmt.Errorf("taint eviction controller: %w", err)
	}
	podGC, err := podgc.New(client, f, opts.PodGC, clock.RealClock{}, log.With("controller", "pod-garbage-collector"))
	if err != nil {
		return fmt.Errorf("pod garbage collector: %w", err)
	}
	var ipam *nodeipam.Controller
	if c.ClusterCIDR != "" {
		mask := c.NodeCIDRMaskSize
		if mask == 0 {
			mask = nodeipam.DefaultMaskSize
		}
		if ipam, err = nodeipam.New(client, f, c.ClusterCIDR, mask, log.With("controller", "node-ipam")); err != nil {
			return fmt.Errorf("node IPAM controller: %w", err)
		}
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("controller manager: %v informer did not sync", typ)
		}
	}
	log.Info("controller manager running")
	gc := garbagecollector.New(meta, cached, log.With("controller", "garbagecollector"))
	// Run returns only once every controller has stopped, so a successor
	// (another leader, or this one restarted) never races a sync of ours.
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := gc.Run(ctx, 5); err != nil && ctx.Err() == nil {
			log.Error("garbage collector stopped", "err", err)
		}
	})
	if ipam != nil {
		wg.Go(func() { ipam.Run(ctx, 1) })
	}
	for _, run := range []func(){
		func() { deploy.Run(ctx, 5) }, func() { eps.Run(ctx, 5) }, func() { lb.Run(ctx, 2) },
		func() { slices.Run(ctx, 5) }, func() { mirror.Run(ctx, 2) }, func() { rs.Run(ctx, 5) }, func() { ds.Run(ctx, 2) }, func() { sts.Run(ctx, 5) },
		func() { rc.Run(ctx, 5) }, func() { jobs.Run(ctx, 5) }, func() { cj.Run(ctx, 5) },
		func() { ttl.Run(ctx, 2) }, func() { sa.Run(ctx, 2) }, func() { ca.Run(ctx, 2) },
		func() { ns.Run(ctx, 5) }, func() { rq.Run(ctx, 5) },
		func() { lifecycle.Run(ctx) }, func() { taints.Run(ctx, 5) }, func() { podGC.Run(ctx) },
		func() { pdbs.Run(ctx, 2) }, func() { binder.Run(ctx, 2) }, func() { pvcProt.Run(ctx, 2) }, func() { pvProt.Run(ctx, 2) },
	} {
		wg.Go(run)
	}
	wg.Wait()
	f.Shutdown()
	return nil
}
