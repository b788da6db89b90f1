// Package kubelet runs the pods bound to one node: it watches them through
// the API, drives each toward its spec through the node's container
// runtime (CRI: sandboxes, images, containers), and reports their status.
//
// One worker goroutine per pod serializes that pod's syncs; syncs are
// level-triggered (the pod from the informer plus what the runtime holds),
// so any number of them converge to the same state, and a restarted
// kubelet picks up running containers without restarting them.
//
// Its HTTPS server (Serve) answers the API server only: container logs,
// and exec, attach and port-forward, whose upgraded connections it proxies
// to the streaming URLs the runtime hands out (CRI Exec, Attach,
// PortForward).
package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/kubelet/lifecycle"
	"github.com/skiff/skiff/pkg/kubelet/objectwatch"
	"github.com/skiff/skiff/pkg/kubelet/prober"
	"github.com/skiff/skiff/pkg/kubelet/sysctl"
	"github.com/skiff/skiff/pkg/kubelet/volumemanager"
	"github.com/skiff/skiff/pkg/version"
	"github.com/skiff/skiff/pkg/volume"
	"github.com/skiff/skiff/pkg/volume/gitrepo"
	"github.com/skiff/skiff/pkg/volume/nfsplugin"
	"github.com/skiff/skiff/pkg/volume/nodedir"
)

// Config configures a Kubelet.
type Config struct {
	NodeName string
	// NodeIP is reported as the pods' hostIP.
	NodeIP  string
	Client  kubernetes.Interface
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService
	// RootDir holds pods/<uid>/ (volumes, termination logs) and logs/.
	RootDir string
	// ClusterDNS and ClusterDomain fill ClusterFirst pods' resolv.conf.
	ClusterDNS    string
	ClusterDomain string
	// ResyncInterval is how often every pod is synced even without events
	// (to notice container exits and back-off expiries); default 1s.
	ResyncInterval time.Duration
	// PodCIDRWait is how long Run waits for the node's pod range before
	// starting pods (0: not at all; the range is passed on when it comes).
	PodCIDRWait time.Duration
	// ProbeHandler runs the containers' probe actions; default the real
	// prober (HTTP and TCP from the node, exec through Runtime, gRPC).
	ProbeHandler prober.Handler
	// Sysctls are the sysctls pods may set (default: upstream's safe set
	// for this kernel); pods setting others fail with SysctlForbidden.
	Sysctls *sysctl.Allowlist
	// VolumePlugins mount the volumes the volume manager serves
	// (claims' persistent volumes, gitRepo, nfs); nil means
	// DefaultVolumePlugins.
	VolumePlugins []volume.Plugin
	Clock         clock.WithTicker
	Log           *slog.Logger
}

// DefaultVolumePlugins are the built-in plugins: node paths (hostPath
// and local PVs), gitRepo and nfs.
func DefaultVolumePlugins() []volume.Plugin {
	return []volume.Plugin{nodedir.New(), gitrepo.New(), nfsplugin.New(&nfsplugin.KernelOrFUSE{})}
}

// Kubelet runs a node's pods.
type Kubelet struct {
	cfg      Config
	pods     corelisters.PodLister
	services corelisters.ServiceLister
	// nodes holds the kubelet's own Node (its allocatable is the
	// downward API's default limit).
	nodes corelisters.NodeLister
	// backoff spaces restarts of crashing containers (10s doubling to 5m).
	backoff *flowcontrol.Backoff
	// pullBackoff spaces failed image pulls the same way.
	pullBackoff *flowcontrol.Backoff

	mu      sync.Mutex
	workers map[types.UID]*worker
	// pullErrors remembers the last pull failure per pod and container.
	pullErrors map[string]error
	// startTimes remembers when each pod was first seen.
	startTimes map[types.UID]time.Time
	recorder   record.EventRecorder

	// probes runs the containers' probes; statuses is what its workers
	// read (the pods' last computed statuses).
	probes   *prober.Manager
	statuses *statusCache
	// hooks runs postStart and preStop hooks.
	hooks *lifecycle.Runner
	// objects watches the ConfigMaps and Secrets the pods' volumes
	// reference and resyncs a pod when one changes, so its volumes follow
	// (set by Run; nil means read from the API).
	objects *objectwatch.Manager
	// volumes stages and publishes plugin-served volumes and remembers
	// them on disk across restarts.
	volumes *volumemanager.Manager
}

// New returns a Kubelet.
func New(cfg Config) *Kubelet {
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.Sysctls == nil {
		// The safe set always makes a valid allowlist.
		cfg.Sysctls, _ = sysctl.NewAllowlist(sysctl.Safe(sysctl.KernelVersion()))
	}
	v := version.Info()
	if cfg.ProbeHandler == nil {
		cfg.ProbeHandler = prober.NewProber(cfg.Runtime, fmt.Sprintf("kube-probe/%s.%s", v.Major, v.Minor))
	}
	if cfg.VolumePlugins == nil {
		cfg.VolumePlugins = DefaultVolumePlugins()
	}
	k := &Kubelet{
		cfg:         cfg,
		backoff:     flowcontrol.NewBackOffWithJitter(10*time.Second, 5*time.Minute, 0),
		pullBackoff: flowcontrol.NewBackOffWithJitter(10*time.Second, 5*time.Minute, 0),
		workers:     map[types.UID]*worker{},
		pullErrors:  map[string]error{},
		startTimes:  map[types.UID]time.Time{},
		statuses:    &statusCache{pods: map[types.UID]cachedStatus{}},
	}
	k.volumes = volumemanager.New(volumemanager.Config{
		RootDir: cfg.RootDir,
		Client:  cfg.Client,
		Plugins: cfg.VolumePlugins,
		Log:     cfg.Log.With("component", "volume-manager"),
	})
	probes, err := prober.New(prober.Config{
		Handler:  cfg.ProbeHandler,
		Status:   k.statuses,
		Recorder: k.event,
		OnChange: k.resync,
		Clock:    cfg.Clock,
		Log:      cfg.Log.With("component", "prober"),
	})
	if err != nil {
		// Handler and Status are set just above.
		panic(err)
	}
	k.probes = probes
	k.hooks = lifecycle.New(lifecycle.Config{
		Exec:      cfg.Runtime,
		UserAgent: fmt.Sprintf("kube-lifecycle/%s.%s", v.Major, v.Minor),
		Clock:     cfg.Clock,
		Recorder:  k.event,
	})
	return k
}

// resync asks a pod's worker, if it has one, to sync now (after a probe
// result changed).
func (k *Kubelet) resync(uid types.UID) {
	k.mu.Lock()
	w := k.workers[uid]
	k.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// worker serializes the syncs of one pod.
type worker struct {
	kick chan struct{}
	stop context.CancelFunc
}

// Run watches the node's pods and keeps them synced until ctx ends.
func (k *Kubelet) Run(ctx context.Context) error {
	podInformers := informers.NewSharedInformerFactoryWithOptions(k.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
		}))
	svcInformers := informers.NewSharedInformerFactory(k.cfg.Client, 0)
	nodeInformers := informers.NewSharedInformerFactoryWithOptions(k.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", k.cfg.NodeName).String()
		}))
	nodeInf := nodeInformers.Core().V1().Nodes()
	k.nodes = nodeInf.Lister()
	k.startRecorder(ctx)
	k.objects = objectwatch.New(ctx, k.cfg.Client, k.resync)
	podInf := podInformers.Core().V1().Pods()
	k.pods = podInf.Lister()
	k.services = svcInformers.Core().V1().Services().Lister()
	_, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { k.kick(ctx, obj) },
		UpdateFunc: func(_, obj interface{}) { k.kick(ctx, obj) },
		DeleteFunc: func(obj interface{}) { k.kick(ctx, obj) },
	})
	if err != nil {
		return err
	}
	// Pods start once the pod network is there (or given up on).
	k.configurePodNetwork(ctx)
	podInformers.Start(ctx.Done())
	svcInformers.Start(ctx.Done())
	nodeInformers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced, svcInformers.Core().V1().Services().Informer().HasSynced, nodeInf.Informer().HasSynced) {
		return ctx.Err()
	}
	k.cleanOrphanedVolumes(ctx)
	k.adoptOrphans(ctx)
	t := k.cfg.Clock.NewTicker(k.cfg.ResyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			pods, _ := k.pods.List(labels.Everything())
			for _, p := range pods {
				k.kick(ctx, p)
			}
			k.adoptOrphans(ctx)
		}
	}
}

// kick asks the pod's worker (started on first use) to sync.
func (k *Kubelet) kick(ctx context.Context, obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.kickUID(ctx, p.UID, p.Namespace, p.Name)
}

func (k *Kubelet) kickUID(ctx context.Context, uid types.UID, ns, name string) {
	k.mu.Lock()
	w, ok := k.workers[uid]
	if !ok {
		wctx, cancel := context.WithCancel(ctx)
		w = &worker{kick: make(chan struct{}, 1), stop: cancel}
		k.workers[uid] = w
		go k.runWorker(wctx, w, uid, ns, name)
	}
	k.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (k *Kubelet) runWorker(ctx context.Context, w *worker, uid types.UID, ns, name string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		done, err := k.syncPod(ctx, uid, ns, name)
		if err != nil {
			k.cfg.Log.Warn("sync pod", "pod", ns+"/"+name, "err", err)
		}
		if done {
			k.objects.UnregisterPod(uid)
			k.probes.RemovePod(uid)
			k.statuses.forget(uid)
			k.mu.Lock()
			delete(k.workers, uid)
			delete(k.startTimes, uid)
			k.mu.Unlock()
			w.stop()
			return
		}
	}
}

// adoptOrphans kicks workers for sandboxes whose pods the kubelet does not
// know (deleted while it was down), so their workers clean them up.
func (k *Kubelet) adoptOrphans(ctx context.Context) {
	sbs, err := k.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return
	}
	for _, sb := range sbs {
		uid := types.UID(sb.Labels[labelPodUID])
		if uid == "" {
			continue
		}
		k.mu.Lock()
		_, known := k.workers[uid]
		k.mu.Unlock()
		if !known {
			k.kickUID(ctx, uid, sb.Labels[labelPodNamespace], sb.Labels[labelPodName])
		}
	}
}

// cleanOrphanedVolumes unpublishes the volumes of pods deleted while the
// kubelet was down (their directories may be gone already).
func (k *Kubelet) cleanOrphanedVolumes(ctx context.Context) {
	pods, err := k.pods.List(labels.Everything())
	if err != nil {
		return
	}
	alive := map[types.UID]bool{}
	for _, p := range pods {
		alive[p.UID] = true
	}
	if err := k.volumes.CleanOrphans(ctx, func(uid types.UID) bool { return alive[uid] }); err != nil {
		k.cfg.Log.Warn("clean up orphaned volumes", "err", err)
	}
}

func podKey(p *corev1.Pod, container string) string {
	return fmt.Sprintf("%s/%s", p.UID, container)
}
