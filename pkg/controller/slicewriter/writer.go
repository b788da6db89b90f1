package slicewriter

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
)

// Plan is the slice writes of one sync.
type Plan struct {
	Create, Update, Delete []*discoveryv1.EndpointSlice
}

// Empty reports whether the plan writes nothing.
func (p Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// Writer writes the slices of one controller, those labelled
// endpointslice.kubernetes.io/managed-by: its name, and tracks the
// writes. A slice's key is its namespace and kubernetes.io/service-name.
type Writer struct {
	*Tracker
	client    kubernetes.Interface
	managedBy string
}

// New returns a Writer over client for the slices managed by managedBy,
// whose Tracker runs on clk.
func New(client kubernetes.Interface, clk clock.PassiveClock, managedBy string) *Writer {
	return &Writer{Tracker: NewTracker(clk), client: client, managedBy: managedBy}
}

// Key returns the key of a slice this controller manages.
func (w *Writer) Key(s *discoveryv1.EndpointSlice) (string, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" || s.Labels[discoveryv1.LabelManagedBy] != w.managedBy {
		return "", false
	}
	return s.Namespace + "/" + name, true
}

// Managed lists the cached slices this controller manages for
// namespace/name, leaving out those already being deleted.
func (w *Writer) Managed(l discoverylisters.EndpointSliceLister, ns, name string) ([]*discoveryv1.EndpointSlice, error) {
	all, err := l.EndpointSlices(ns).List(labels.SelectorFromValidatedSet(labels.Set{
		discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: w.managedBy,
	}))
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, s := range all {
		if s.DeletionTimestamp == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// Handler is the EndpointSlice informer handler of the controller: it
// adds the key of every slice it manages (on a relabelling, the old key
// too), so that hand edits and deletions are undone and a sync put off
// for a stale cache runs again, and forgets deletions the cache saw.
func (w *Writer) Handler(add func(string)) cache.ResourceEventHandler {
	keyOf := w.Key
	return typedhandler.Funcs(
		func(s *discoveryv1.EndpointSlice) {
			if key, ok := keyOf(s); ok {
				add(key)
			}
		},
		func(old, s *discoveryv1.EndpointSlice) {
			key, ok := keyOf(s)
			if ok {
				add(key)
			}
			if oldKey, oldOK := keyOf(old); oldOK && (!ok || oldKey != key) {
				add(oldKey)
			}
		},
		func(s *discoveryv1.EndpointSlice) {
			if key, ok := keyOf(s); ok {
				w.ObservedDeletion(key, s.Name)
				add(key)
			}
		},
	)
}

// Apply makes a plan's writes for key in namespace ns: creations (unless
// create is false, for an owner being deleted), then updates, then
// deletions, so that endpoints moving between slices are never missing
// from all.
func (w *Writer) Apply(ctx context.Context, key, ns string, create bool, p Plan) error {
	client := w.client.DiscoveryV1().EndpointSlices(ns)
	if create {
		for _, s := range p.Create {
			got, err := client.Create(ctx, s, metav1.CreateOptions{})
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // creations fail until the namespace is gone
			}
			if err != nil {
				return fmt.Errorf("create endpointslice for %s: %w", key, err)
			}
			w.Wrote(key, got)
		}
	}
	for _, s := range p.Update {
		got, err := client.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update endpointslice %s/%s: %w", s.Namespace, s.Name, err)
		}
		w.Wrote(key, got)
	}
	var errs []error
	for _, s := range p.Delete {
		if err := w.delete(ctx, key, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeleteAll deletes the given slices of key, but those whose deletion is
// already on its way.
func (w *Writer) DeleteAll(ctx context.Context, key string, existing []*discoveryv1.EndpointSlice) error {
	var errs []error
	for _, s := range existing {
		if w.ExpectsDeletion(key, s.Name) {
			continue
		}
		if err := w.delete(ctx, key, s); err != nil {
			errs = append(errs, err)
		}
	}
	if len(existing) == 0 {
		w.Forget(key)
	}
	return errors.Join(errs...)
}

func (w *Writer) delete(ctx context.Context, key string, s *discoveryv1.EndpointSlice) error {
	var opts metav1.DeleteOptions
	if s.UID != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &s.UID}
	}
	err := w.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete endpointslice %s/%s: %w", s.Namespace, s.Name, err)
	}
	w.Deleted(key, s.Name)
	return nil
}
