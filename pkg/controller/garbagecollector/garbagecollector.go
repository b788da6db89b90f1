// Package garbagecollector deletes objects whose owners are gone, following
// metadata.ownerReferences, as upstream's garbage collector does:
//
//   - background (the default): when every owner of an object is gone, the
//     object is deleted;
//   - foreground: an owner deleted with propagationPolicy=Foreground keeps
//     the foregroundDeletion finalizer while its dependents are deleted, and
//     goes once none is left;
//   - orphan: an owner deleted with propagationPolicy=Orphan keeps the
//     orphan finalizer until its dependents no longer reference it.
//
// It watches every resource that can be listed, watched and deleted
// through metadata-only informers, and checks owners against the API
// before acting, so a stale cache never deletes a live object's dependent.
package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// The finalizers the API server adds for non-background propagation.
const (
	FinalizerOrphan     = metav1.FinalizerOrphanDependents
	FinalizerForeground = metav1.FinalizerDeleteDependents
)

// objectRef identifies an object in the graph.
type objectRef struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
	uid       types.UID
}

// node is an object the collector knows, with its owners and dependents.
type node struct {
	ref        objectRef
	owners     []metav1.OwnerReference
	dependents map[types.UID]*node
	// finalizers and deleting mirror the object's.
	finalizers []string
	deleting   bool
}

// GC is the garbage collector.
type GC struct {
	meta      metadata.Interface
	discovery discovery.DiscoveryInterface
	log       *slog.Logger

	mu    sync.Mutex
	nodes map[types.UID]*node
	// kinds maps apiVersion+kind to the resource serving it; namespaced
	// says which resources live in namespaces (both from discovery).
	kinds      map[schema.GroupVersionKind]schema.GroupVersionResource
	namespaced map[schema.GroupVersionResource]bool

	attemptToDelete workqueue.TypedRateLimitingInterface[types.UID]
	attemptToOrphan workqueue.TypedRateLimitingInterface[types.UID]
	// pending holds dependents whose owner is not in the graph yet.
	pending map[types.UID]sets.Set[types.UID]
}

// New returns a collector; Run starts it.
func New(meta metadata.Interface, disc discovery.DiscoveryInterface, log *slog.Logger) *GC {
	rl := func(name string) workqueue.TypedRateLimitingInterface[types.UID] {
		return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.UID](),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: name})
	}
	return &GC{meta: meta, discovery: disc, log: log, nodes: map[types.UID]*node{},
		kinds: map[schema.GroupVersionKind]schema.GroupVersionResource{}, namespaced: map[schema.GroupVersionResource]bool{}, pending: map[types.UID]sets.Set[types.UID]{},
		attemptToDelete: rl("garbage_collector_attempt_to_delete"), attemptToOrphan: rl("garbage_collector_attempt_to_orphan")}
}

// deletableResources are the resources the collector watches.
func (gc *GC) deletableResources() ([]schema.GroupVersionResource, error) {
	lists, err := discovery.ServerPreferredResources(gc.discovery)
	var out []schema.GroupVersionResource
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			verbs := sets.New(r.Verbs...)
			if strings.Contains(r.Name, "/") || !verbs.HasAll("list", "watch", "delete", "patch") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			gc.kinds[gv.WithKind(r.Kind)] = gvr
			gc.namespaced[gvr] = r.Namespaced
			if r.Name == "events" {
				continue // never owners, rarely owned; too many
			}
			out = append(out, gvr)
		}
	}
	return out, err
}

// Run watches the cluster and collects garbage until ctx ends.
func (gc *GC) Run(ctx context.Context, workers int) error {
	defer gc.attemptToDelete.ShutDown()
	defer gc.attemptToOrphan.ShutDown()
	resources, err := gc.deletableResources()
	if err != nil && len(resources) == 0 {
		return fmt.Errorf("garbage collector discovery: %w", err)
	}
	f := metadatainformer.NewSharedInformerFactory(gc.meta, 0)
	var synced []cache.InformerSynced
	for _, gvr := range resources {
		inf := f.ForResource(gvr).Informer()
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { gc.observe(gvr, obj, false) },
			UpdateFunc: func(_, obj any) { gc.observe(gvr, obj, false) },
			DeleteFunc: func(obj any) {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				gc.observe(gvr, obj, true)
			},
		})
		if err != nil {
			return err
		}
		synced = append(synced, reg.HasSynced)
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	gc.log.Info("garbage collector running", "resources", len(resources))
	for range workers {
		go func() {
			for gc.processDelete(ctx) {
			}
		}()
		go func() {
			for gc.processOrphan(ctx) {
			}
		}()
	}
	<-ctx.Done()
	f.Shutdown()
	return nil
}

// observe updates the graph with an object's latest state and queues the
// work it implies.
func (gc *GC) observe(gvr schema.GroupVersionResource, obj any, deleted bool) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	uid := m.UID
	n := gc.nodes[uid]
	if deleted {
		if n == nil {
			return
		}
		delete(gc.nodes, uid)
		for _, o := range n.owners {
			if owner := gc.nodes[o.UID]; owner != nil {
				delete(owner.dependents, uid)
				if owner.deleting && slices.Contains(owner.finalizers, FinalizerForeground) {
					gc.attemptToDelete.Add(owner.ref.uid) // perhaps its last dependent
				}
			}
		}
		for depUID := range n.dependents {
			gc.attemptToDelete.Add(depUID)
		}
		return
	}
	if n == nil {
		n = &node{ref: objectRef{gvr: gvr, namespace: m.Namespace, name: m.Name, uid: uid}, dependents: map[types.UID]*node{}}
		gc.nodes[uid] = n
		for depUID := range gc.pending[uid] {
			if dep := gc.nodes[depUID]; dep != nil {
				n.dependents[depUID] = dep
			}
		}
		delete(gc.pending, uid)
	}
	// Re-link owners. An owner waiting for its dependents looks again:
	// this one may have stopped blocking it.
	for _, o := range n.owners {
		if owner := gc.nodes[o.UID]; owner != nil {
			delete(owner.dependents, uid)
			if owner.deleting && slices.Contains(owner.finalizers, FinalizerForeground) {
				gc.attemptToDelete.Add(owner.ref.uid)
			}
		} else if p := gc.pending[o.UID]; p != nil {
			p.Delete(uid)
		}
	}
	n.owners = m.OwnerReferences
	n.finalizers = m.Finalizers
	n.deleting = m.DeletionTimestamp != nil
	ownerMissing := false
	for _, o := range n.owners {
		if owner := gc.nodes[o.UID]; owner != nil {
			owner.dependents[uid] = n
			if owner.deleting {
				ownerMissing = true // an owner being deleted may wait for us
			}
		} else {
			if gc.pending[o.UID] == nil {
				gc.pending[o.UID] = sets.New[types.UID]()
			}
			gc.pending[o.UID].Insert(uid)
			ownerMissing = true
		}
	}
	if ownerMissing {
		gc.attemptToDelete.Add(uid)
	}
	if n.deleting {
		switch {
		case slices.Contains(n.finalizers, FinalizerOrphan):
			gc.attemptToOrphan.Add(uid)
		case slices.Contains(n.finalizers, FinalizerForeground):
			gc.attemptToDelete.Add(uid)
			for depUID := range n.dependents {
				gc.attemptToDelete.Add(depUID)
			}
		}
	}
}

func (gc *GC) processDelete(ctx context.Context) bool {
	uid, quit := gc.attemptToDelete.Get()
	if quit {
		return false
	}
	defer gc.attemptToDelete.Done(uid)
	if err := gc.attemptDelete(ctx, uid); err != nil {
		gc.log.Warn("garbage collection", "uid", uid, "err", err)
		gc.attemptToDelete.AddRateLimited(uid)
		return true
	}
	gc.attemptToDelete.Forget(uid)
	return true
}

// snapshot copies what the workers need of a node under the lock:
// itself, its dependents not yet being deleted, and how many dependents
// (deleting or not) block its deletion.
func (gc *GC) snapshot(uid types.UID) (n node, dependents []objectRef, blocking int, ok bool) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	p := gc.nodes[uid]
	if p == nil {
		return node{}, nil, 0, false
	}
	for _, d := range p.dependents {
		if !d.deleting {
			dependents = append(dependents, d.ref)
		}
		for _, o := range d.owners {
			if o.UID == uid && o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion {
				blocking++
			}
		}
	}
	return *p, dependents, blocking, true
}

// attemptDelete handles one object: an owner in foreground deletion
// queues its dependents and drops its finalizer once none blocks it; a dependent whose
// owners are all gone is deleted, one with some live owners drops the
// references to the gone ones.
func (gc *GC) attemptDelete(ctx context.Context, uid types.UID) error {
	n, dependents, blocking, ok := gc.snapshot(uid)
	if !ok {
		return nil
	}
	if n.deleting && slices.Contains(n.finalizers, FinalizerForeground) {
		// Each dependent decides for itself (it may have other owners,
		// or close a cycle of references).
		for _, d := range dependents {
			gc.attemptToDelete.Add(d.uid)
		}
		if blocking == 0 {
			return gc.removeFinalizer(ctx, n.ref, FinalizerForeground)
		}
		return nil // each blocking dependent's removal requeues us
	}
	if len(n.owners) == 0 {
		return nil
	}
	var solid, dangling, waiting []metav1.OwnerReference
	for _, o := range n.owners {
		state, err := gc.ownerState(ctx, n.ref.namespace, o)
		if err != nil {
			return err
		}
		switch state {
		case ownerSolid:
			solid = append(solid, o)
		case ownerDangling:
			dangling = append(dangling, o)
		case ownerWaiting:
			waiting = append(waiting, o)
		}
	}
	switch {
	case len(solid) > 0:
		if len(dangling)+len(waiting) == 0 {
			return nil
		}
		return gc.removeOwnerRefs(ctx, n.ref, append(dangling, waiting...))
	case len(waiting) > 0:
		// An owner waits for us: go in the foreground too, so that our
		// own dependents go first. When one of those dependents is itself
		// waiting for its dependents, the references may form a cycle
		// that would wait forever: stop blocking our owners first, as
		// upstream does.
		if gc.dependentWaiting(uid) {
			if err := gc.unblockOwnerRefs(ctx, n.ref); err != nil {
				return err
			}
		}
		return gc.deleteObject(ctx, n.ref, metav1.DeletePropagationForeground)
	default:
		return gc.deleteObject(ctx, n.ref, metav1.DeletePropagationBackground)
	}
}

// dependentWaiting reports whether a dependent of uid is being deleted in
// the foreground (waiting for its own dependents).
func (gc *GC) dependentWaiting(uid types.UID) bool {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	p := gc.nodes[uid]
	if p == nil {
		return false
	}
	for _, d := range p.dependents {
		if d.deleting && slices.Contains(d.finalizers, FinalizerForeground) {
			return true
		}
	}
	return false
}

// unblockOwnerRefs sets blockOwnerDeletion=false on every owner reference
// of the object (merge patch of the list, guarded by UID and
// resourceVersion).
func (gc *GC) unblockOwnerRefs(ctx context.Context, ref objectRef) error {
	return gc.editMeta(ctx, ref, func(cur *metav1.PartialObjectMetadata) (map[string]any, bool) {
		refs := slices.Clone(cur.OwnerReferences)
		changed := false
		for i := range refs {
			if refs[i].BlockOwnerDeletion != nil && *refs[i].BlockOwnerDeletion {
				refs[i].BlockOwnerDeletion = new(false)
				changed = true
			}
		}
		return map[string]any{"ownerReferences": refs}, changed
	})
}

type ownerStateKind int

const (
	ownerSolid ownerStateKind = iota
	ownerDangling
	ownerWaiting
)

// ownerState reads the owner from the API (not the cache): absent or with
// another UID it is dangling.
func (gc *GC) ownerState(ctx context.Context, ns string, o metav1.OwnerReference) (ownerStateKind, error) {
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		return ownerDangling, nil
	}
	gc.mu.Lock()
	gvr, known := gc.kinds[gv.WithKind(o.Kind)]
	namespaced := gc.namespaced[gvr]
	gc.mu.Unlock()
	if !known {
		// A kind the API does not serve cannot have a live owner.
		return ownerDangling, nil
	}
	var m *metav1.PartialObjectMetadata
	if ns != "" && namespaced {
		m, err = gc.meta.Resource(gvr).Namespace(ns).Get(ctx, o.Name, metav1.GetOptions{})
	} else {
		m, err = gc.meta.Resource(gvr).Get(ctx, o.Name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return ownerDangling, nil
	}
	if err != nil {
		return ownerSolid, err
	}
	if m.UID != o.UID {
		return ownerDangling, nil
	}
	if m.DeletionTimestamp != nil && slices.Contains(m.Finalizers, FinalizerForeground) {
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

func (gc *GC) resource(ref objectRef) metadata.ResourceInterface {
	if ref.namespace != "" {
		return gc.meta.Resource(ref.gvr).Namespace(ref.namespace)
	}
	return gc.meta.Resource(ref.gvr)
}

func (gc *GC) deleteObject(ctx context.Context, ref objectRef, policy metav1.DeletionPropagation) error {
	uid := ref.uid
	err := gc.resource(ref).Delete(ctx, ref.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced by an object with another UID
	}
	if err == nil {
		gc.log.Debug("deleted object whose owners are gone", "resource", ref.gvr.Resource, "namespace", ref.namespace, "name", ref.name, "propagation", policy)
	}
	return err
}

// removeOwnerRefs drops the given owner references (merge patch of the
// remaining list, guarded by the object's UID).
func (gc *GC) removeOwnerRefs(ctx context.Context, ref objectRef, drop []metav1.OwnerReference) error {
	return gc.editMeta(ctx, ref, func(cur *metav1.PartialObjectMetadata) (map[string]any, bool) {
		var keep []metav1.OwnerReference
		for _, o := range cur.OwnerReferences {
			if !slices.ContainsFunc(drop, func(d metav1.OwnerReference) bool { return d.UID == o.UID }) {
				keep = append(keep, o)
			}
		}
		return map[string]any{"ownerReferences": keep}, len(keep) != len(cur.OwnerReferences)
	})
}

func (gc *GC) removeFinalizer(ctx context.Context, ref objectRef, finalizer string) error {
	return gc.editMeta(ctx, ref, func(cur *metav1.PartialObjectMetadata) (map[string]any, bool) {
		if !slices.Contains(cur.Finalizers, finalizer) {
			return nil, false
		}
		keep := slices.DeleteFunc(slices.Clone(cur.Finalizers), func(f string) bool { return f == finalizer })
		if keep == nil {
			keep = []string{}
		}
		return map[string]any{"finalizers": keep}, true
	})
}

// editMeta reads the object ref names from the API and, if it is still
// that object (same UID) and change says so, patches the metadata fields
// change returns, preconditioned on the UID and resourceVersion read.
func (gc *GC) editMeta(ctx context.Context, ref objectRef, change func(*metav1.PartialObjectMetadata) (map[string]any, bool)) error {
	cur, err := gc.resource(ref).Get(ctx, ref.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.UID != ref.uid {
		return nil
	}
	meta, ok := change(cur)
	if !ok {
		return nil
	}
	meta["uid"], meta["resourceVersion"] = ref.uid, cur.ResourceVersion
	return gc.patchMeta(ctx, ref, meta)
}

func (gc *GC) patchMeta(ctx context.Context, ref objectRef, meta map[string]any) error {
	b, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = gc.resource(ref).Patch(ctx, ref.name, types.MergePatchType, b, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (gc *GC) processOrphan(ctx context.Context) bool {
	uid, quit := gc.attemptToOrphan.Get()
	if quit {
		return false
	}
	defer gc.attemptToOrphan.Done(uid)
	if err := gc.orphan(ctx, uid); err != nil {
		gc.log.Warn("orphan dependents", "uid", uid, "err", err)
		gc.attemptToOrphan.AddRateLimited(uid)
		return true
	}
	gc.attemptToOrphan.Forget(uid)
	return true
}

// orphan removes an owner's references from its dependents, then its
// orphan finalizer.
func (gc *GC) orphan(ctx context.Context, uid types.UID) error {
	n, dependents, _, ok := gc.snapshot(uid)
	if !ok || !n.deleting || !slices.Contains(n.finalizers, FinalizerOrphan) {
		return nil
	}
	owner := []metav1.OwnerReference{{UID: uid}}
	for _, d := range dependents {
		if err := gc.removeOwnerRefs(ctx, d, owner); err != nil {
			return err
		}
	}
	return gc.removeFinalizer(ctx, n.ref, FinalizerOrphan)
}
