// Package objectwatch keeps the ConfigMaps and Secrets that the node's
// pods mount as volumes, as upstream kubelet's watch-based manager does:
// each object is watched by name (a list+watch with a metadata.name field
// selector) for as long as some registered pod references it, reads are
// served from that watch's cache, and every change (creation, update,
// deletion) is reported for each pod referencing the object so that its
// volumes are rewritten within moments, without a GET per pod per sync.
package objectwatch

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// syncTimeout bounds how long a read waits for a new watch's first list.
const syncTimeout = 10 * time.Second

type kind string

const (
	configMaps kind = "configmaps"
	secrets    kind = "secrets"
)

// ref names one watched object.
type ref struct {
	kind      kind
	namespace string
	name      string
}

// objectWatch is the list+watch of one object and the pods referencing it.
type objectWatch struct {
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
	pods     map[types.UID]bool
}

// Manager watches the objects registered pods reference.
type Manager struct {
	ctx      context.Context
	client   kubernetes.Interface
	onChange func(types.UID)

	// mu guards pods and watches.
	mu      sync.Mutex
	pods    map[types.UID]map[ref]bool
	watches map[ref]*objectWatch
}

// New returns a Manager whose watches live until ctx ends. onChange is
// called (from a watch goroutine) with each pod referencing an object
// that changed.
func New(ctx context.Context, client kubernetes.Interface, onChange func(types.UID)) *Manager {
	return &Manager{
		ctx:      ctx,
		client:   client,
		onChange: onChange,
		pods:     map[types.UID]map[ref]bool{},
		watches:  map[ref]*objectWatch{},
	}
}

// RegisterPod makes the Manager watch the ConfigMaps and Secrets the pod's
// volumes reference (and stop watching those it no longer does). It is
// cheap to call on every sync. A nil Manager watches nothing.
func (m *Manager) RegisterPod(pod *corev1.Pod) {
	if m == nil {
		return
	}
	want := volumeRefs(pod)
	m.mu.Lock()
	defer m.mu.Unlock()
	have := m.pods[pod.UID]
	for r := range want {
		if have[r] {
			continue
		}
		w := m.watches[r]
		if w == nil {
			w = m.startWatch(r)
			m.watches[r] = w
		}
		w.pods[pod.UID] = true
	}
	for r := range have {
		if !want[r] {
			m.release(r, pod.UID)
		}
	}
	m.pods[pod.UID] = want
}

// UnregisterPod drops the pod's references; watches no pod needs stop.
func (m *Manager) UnregisterPod(uid types.UID) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for r := range m.pods[uid] {
		m.release(r, uid)
	}
	delete(m.pods, uid)
}

// release drops uid's reference to r; m.mu is held.
func (m *Manager) release(r ref, uid types.UID) {
	w := m.watches[r]
	if w == nil {
		return
	}
	delete(w.pods, uid)
	if len(w.pods) == 0 {
		w.stop()
		delete(m.watches, r)
	}
}

// ConfigMap returns the named ConfigMap, from its watch when a registered
// pod references it, else straight from the API.
func (m *Manager) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	obj, err := m.get(ctx, ref{configMaps, namespace, name})
	if obj == nil || err != nil {
		if obj == nil && err == nil {
			return m.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
		}
		return nil, err
	}
	return obj.(*corev1.ConfigMap), nil
}

// Secret returns the named Secret, from its watch when a registered pod
// references it, else straight from the API.
func (m *Manager) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	obj, err := m.get(ctx, ref{secrets, namespace, name})
	if obj == nil || err != nil {
		if obj == nil && err == nil {
			return m.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		}
		return nil, err
	}
	return obj.(*corev1.Secret), nil
}

// get reads r from its watch's cache: (nil, nil) when r is not watched, a
// NotFound error when the object does not exist.
func (m *Manager) get(ctx context.Context, r ref) (runtime.Object, error) {
	m.mu.Lock()
	w := m.watches[r]
	m.mu.Unlock()
	if w == nil {
		return nil, nil
	}
	if !w.informer.HasSynced() {
		sctx, cancel := context.WithTimeout(ctx, syncTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(sctx.Done(), w.informer.HasSynced) {
			return nil, fmt.Errorf("%s %s/%s: watch not synced: %w", r.kind, r.namespace, r.name, context.Cause(sctx))
		}
	}
	obj, ok, err := w.informer.GetStore().GetByKey(r.namespace + "/" + r.name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: string(r.kind)}, r.name)
	}
	return obj.(runtime.Object), nil
}

// startWatch starts the list+watch of r; m.mu is held.
func (m *Manager) startWatch(r ref) *objectWatch {
	sel := fields.OneTermEqualSelector("metadata.name", r.name).String()
	var (
		lw      *cache.ListWatch
		example runtime.Object
	)
	switch r.kind {
	case configMaps:
		c := m.client.CoreV1().ConfigMaps(r.namespace)
		example = &corev1.ConfigMap{}
		lw = &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = sel
				return c.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = sel
				return c.Watch(ctx, o)
			},
		}
	case secrets:
		c := m.client.CoreV1().Secrets(r.namespace)
		example = &corev1.Secret{}
		lw = &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = sel
				return c.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = sel
				return c.Watch(ctx, o)
			},
		}
	}
	ctx, cancel := context.WithCancel(m.ctx)
	w := &objectWatch{
		// As the generated informers: a client without watch-list support
		// (the fake clientset) lists instead.
		informer: cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, m.client), example, 0, cache.Indexers{}),
		stop:     cancel,
		pods:     map[types.UID]bool{},
	}
	notify := func(obj interface{}) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		// A field selector the server ignores must not mix objects up.
		if o, ok := obj.(metav1.Object); !ok || o.GetName() != r.name {
			return
		}
		m.mu.Lock()
		uids := make([]types.UID, 0, len(w.pods))
		for uid := range w.pods {
			uids = append(uids, uid)
		}
		m.mu.Unlock()
		for _, uid := range uids {
			m.onChange(uid)
		}
	}
	// Only fails once the informer has stopped, and it has not started.
	_, _ = w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj interface{}) { notify(obj) },
		DeleteFunc: notify,
	})
	go w.informer.RunWithContext(ctx)
	return w
}

// volumeRefs lists the ConfigMaps and Secrets the pod's volumes reference.
func volumeRefs(pod *corev1.Pod) map[ref]bool {
	out := map[ref]bool{}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			out[ref{configMaps, pod.Namespace, v.ConfigMap.Name}] = true
		case v.Secret != nil:
			out[ref{secrets, pod.Namespace, v.Secret.SecretName}] = true
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ConfigMap != nil:
					out[ref{configMaps, pod.Namespace, s.ConfigMap.Name}] = true
				case s.Secret != nil:
					out[ref{secrets, pod.Namespace, s.Secret.Name}] = true
				}
			}
		}
	}
	return out
}
