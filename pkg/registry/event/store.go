package event

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/storage"
)

// convertingStore serves events.k8s.io/v1 Events from a store of core/v1
// Events, converting every object on the way in and out.
type convertingStore struct {
	core storage.Store
}

var _ storage.Store = convertingStore{}

// NewConvertingStore wraps the core events' storage for events.k8s.io/v1.
func NewConvertingStore(core storage.Store) storage.Store { return convertingStore{core: core} }

func toV1(obj runtime.Object) runtime.Object {
	if e, ok := obj.(*corev1.Event); ok {
		return FromCore(e)
	}
	return obj
}

func toCoreObj(obj runtime.Object) runtime.Object {
	if e, ok := obj.(*eventsv1.Event); ok {
		return ToCore(e)
	}
	return obj
}

func setV1(out runtime.Object, core *corev1.Event) {
	*out.(*eventsv1.Event) = *FromCore(core)
}

func (s convertingStore) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	core := &corev1.Event{}
	if err := s.core.Get(ctx, key, opts, core); err != nil {
		return err
	}
	setV1(out, core)
	return nil
}

func (s convertingStore) Create(ctx context.Context, key string, obj runtime.Object, reservations []string, out runtime.Object) error {
	core := &corev1.Event{}
	if err := s.core.Create(ctx, key, toCoreObj(obj), reservations, core); err != nil {
		return err
	}
	setV1(out, core)
	return nil
}

func (s convertingStore) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, tryUpdate storage.UpdateFunc) error {
	core := &corev1.Event{}
	err := s.core.GuaranteedUpdate(ctx, key, core, func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		updated, change, err := tryUpdate(toV1(cur))
		if updated != nil {
			updated = toCoreObj(updated)
		}
		return updated, change, err
	})
	if err != nil {
		return err
	}
	setV1(out, core)
	return nil
}

func (s convertingStore) Delete(ctx context.Context, key string, out runtime.Object, opts storage.DeleteOptions) error {
	core := &corev1.Event{}
	wrapped := storage.DeleteOptions{}
	if opts.Precondition != nil {
		wrapped.Precondition = func(cur runtime.Object) error { return opts.Precondition(toV1(cur)) }
	}
	if opts.Reservations != nil {
		wrapped.Reservations = func(cur runtime.Object) []string { return opts.Reservations(toV1(cur)) }
	}
	if err := s.core.Delete(ctx, key, core, wrapped); err != nil {
		return err
	}
	setV1(out, core)
	return nil
}

// corePredicate evaluates a predicate written for events.k8s.io/v1 objects
// on stored core/v1 objects.
func corePredicate(p storage.Predicate) storage.Predicate {
	if p.GetAttrs == nil {
		return p
	}
	get := p.GetAttrs
	p.GetAttrs = func(obj runtime.Object) (labels.Set, fields.Set, error) { return get(toV1(obj)) }
	return p
}

func (s convertingStore) List(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	opts.Predicate = corePredicate(opts.Predicate)
	core := &corev1.EventList{}
	if err := s.core.List(ctx, prefix, opts, core); err != nil {
		return err
	}
	out := listObj.(*eventsv1.EventList)
	out.ListMeta = core.ListMeta
	out.Items = make([]eventsv1.Event, len(core.Items))
	for i := range core.Items {
		out.Items[i] = *FromCore(&core.Items[i])
	}
	return nil
}

func (s convertingStore) Watch(ctx context.Context, key string, opts storage.WatchOptions) (watch.Interface, error) {
	opts.Predicate = corePredicate(opts.Predicate)
	w, err := s.core.Watch(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
		ev.Object = toV1(ev.Object)
		return ev, true
	}), nil
}

func (s convertingStore) Count(ctx context.Context, prefix string) (int64, error) {
	return s.core.Count(ctx, prefix)
}

func (s convertingStore) CurrentRevision(ctx context.Context) (int64, error) {
	return s.core.CurrentRevision(ctx)
}

func (s convertingStore) KeyExists(ctx context.Context, key string) (bool, error) {
	return s.core.KeyExists(ctx, key)
}
