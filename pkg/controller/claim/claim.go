// Package claim decides which objects a controller owns, as upstream's
// ControllerRefManager does: objects it controls that still match its
// selector stay, orphans that match are adopted (the controller reference
// is added), and objects it controls that stopped matching are released
// (the reference is removed). Adoption and release are merge patches
// guarded by the object's UID, so a recreated object is never touched.
package claim

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Owner is the controller object claiming.
type Owner struct {
	Meta     metav1.Object
	Kind     schema.GroupVersionKind
	Selector labels.Selector
	// NoAdopt stops adoption (say, of a finished Job) without stopping
	// release.
	NoAdopt bool
}

// Patch applies a JSON merge patch to obj.
type Patch[T metav1.Object] func(ctx context.Context, obj T, patch []byte) error

// Extra returns more metadata fields for the patch that adopts (adopt) or
// releases obj, or nil.
type Extra[T metav1.Object] func(obj T, adopt bool) map[string]any

// Objects returns those of objs that o controls once matching orphans are
// adopted and non-matching ones released. A deleted owner adopts and
// releases nothing; objects that vanish meanwhile are skipped.
func Objects[T metav1.Object](ctx context.Context, o Owner, objs []T, patch Patch[T], extra Extra[T]) ([]T, error) {
	deleting := o.Meta.GetDeletionTimestamp() != nil
	var owned []T
	for _, obj := range objs {
		ref := metav1.GetControllerOf(obj)
		matches := !o.Selector.Empty() && o.Selector.Matches(labels.Set(obj.GetLabels()))
		switch {
		case ref != nil && ref.UID == o.Meta.GetUID():
			if matches {
				owned = append(owned, obj)
				continue
			}
			if deleting {
				continue
			}
			if err := setOwner(ctx, o, obj, false, patch, extra); err != nil && !apierrors.IsNotFound(err) {
				return nil, err
			}
		case ref == nil && matches && !deleting && !o.NoAdopt && obj.GetDeletionTimestamp() == nil:
			err := setOwner(ctx, o, obj, true, patch, extra)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			owned = append(owned, obj)
		}
	}
	return owned, nil
}

func setOwner[T metav1.Object](ctx context.Context, o Owner, obj T, adopt bool, patch Patch[T], extra Extra[T]) error {
	refs := []metav1.OwnerReference{}
	for _, r := range obj.GetOwnerReferences() {
		if r.UID != o.Meta.GetUID() {
			refs = append(refs, r)
		}
	}
	if adopt {
		refs = append(refs, *metav1.NewControllerRef(o.Meta, o.Kind))
	}
	m := map[string]any{"ownerReferences": refs, "uid": obj.GetUID()}
	if extra != nil {
		for k, v := range extra(obj, adopt) {
			m[k] = v
		}
	}
	b, err := json.Marshal(map[string]any{"metadata": m})
	if err != nil {
		return err
	}
	if err := patch(ctx, obj, b); err != nil {
		verb := "release"
		if adopt {
			verb = "adopt"
		}
		return fmt.Errorf("%s %s: %w", verb, types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}, err)
	}
	return nil
}
