package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/storage"
)

// The finalizers the garbage collector acts on.
const (
	FinalizerOrphanDependents = metav1.FinalizerOrphanDependents
	FinalizerDeleteDependents = metav1.FinalizerDeleteDependents
)

// Delete deletes the named object, or marks it for deletion when it is
// deleted gracefully or has finalizers. It returns the final (or current)
// state and whether the object is gone.
func (s *Store) Delete(ctx context.Context, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if errs := validateDeleteOptions(opts); len(errs) > 0 {
		return nil, false, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "DeleteOptions"}, "", errs)
	}
	dryRun := len(opts.DryRun) > 0
	out := s.Resource.New()
	gone := false
	var dryRunResult runtime.Object
	err := s.Storage.GuaranteedUpdate(ctx, s.key(ns, name), out, func(current runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		obj := current.DeepCopyObject()
		acc, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil, err
		}
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != acc.GetUID() {
				return nil, nil, apierrors.NewConflict(s.groupResource(), name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, acc.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != acc.GetResourceVersion() {
				return nil, nil, apierrors.NewConflict(s.groupResource(), name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, acc.GetResourceVersion()))
			}
		}
		attrs := &Attributes{Operation: Delete, Resource: s.Resource, Namespace: ns, Name: name, OldObject: current, DryRun: dryRun}
		if err := s.admit(ctx, attrs, true); err != nil {
			return nil, nil, err
		}
		if err := s.admit(ctx, attrs, false); err != nil {
			return nil, nil, err
		}
		keep, err := s.markForDeletion(ctx, obj, acc, opts)
		if err != nil {
			return nil, nil, err
		}
		var change *storage.ReservationChange
		if !keep {
			gone = true
			if r, ok := s.Resource.Strategy.(Reserver); ok {
				change = &storage.ReservationChange{Remove: r.Reservations(current)}
			}
		} else {
			gone = false
		}
		if dryRun {
			dryRunResult = obj
			return nil, nil, errDryRun
		}
		if gone {
			return current, change, storage.ErrDeleteInstead
		}
		return obj, nil, nil
	})
	if errors.Is(err, errDryRun) {
		return dryRunResult, gone, nil
	}
	if err != nil {
		return nil, false, s.apiError(err, name)
	}
	return out, gone, nil
}

// markForDeletion applies graceful deletion and finalizers to obj and says
// whether it must be kept (updated) rather than removed. The first time
// it sets deletionTimestamp it bumps a kept generation, as upstream does:
// the object's controllers must act differently from then on.
func (s *Store) markForDeletion(ctx context.Context, obj runtime.Object, acc metav1.Object, opts *metav1.DeleteOptions) (bool, error) {
	deleting := acc.GetDeletionTimestamp() != nil
	keep, err := s.applyDeletion(ctx, obj, acc, opts)
	if err == nil && keep && !deleting && acc.GetDeletionTimestamp() != nil && acc.GetGeneration() > 0 {
		acc.SetGeneration(acc.GetGeneration() + 1)
	}
	return keep, err
}

// applyDeletion does markForDeletion's work but the generation bump.
func (s *Store) applyDeletion(ctx context.Context, obj runtime.Object, acc metav1.Object, opts *metav1.DeleteOptions) (bool, error) {
	strat := s.Resource.Strategy
	if d, ok := strat.(Deleter); ok {
		keep, err := d.BeforeDelete(ctx, obj, opts)
		if err != nil || keep {
			return keep, err
		}
	}
	now := metav1.NewTime(s.Clock.Now().Truncate(time.Second))
	finalizers, changed := s.finalizersFor(acc, opts)
	if changed {
		acc.SetFinalizers(finalizers)
	}
	if g, ok := strat.(GracefulDeleter); ok {
		if secs, graceful := g.GracePeriod(obj, opts); graceful && secs > 0 {
			deadline := metav1.NewTime(now.Add(time.Duration(secs) * time.Second))
			// A second delete may shorten the grace period, never lengthen it.
			if cur := acc.GetDeletionTimestamp(); cur == nil || deadline.Before(cur) {
				acc.SetDeletionTimestamp(&deadline)
				acc.SetDeletionGracePeriodSeconds(&secs)
			}
			return true, nil
		}
	}
	if len(acc.GetFinalizers()) > 0 {
		if acc.GetDeletionTimestamp() == nil {
			acc.SetDeletionTimestamp(&now)
			zero := int64(0)
			acc.SetDeletionGracePeriodSeconds(&zero)
		}
		return true, nil
	}
	return false, nil
}

// finalizersFor returns obj's finalizers after applying the propagation
// policy of a deletion, as upstream's generic registry does.
func (s *Store) finalizersFor(acc metav1.Object, opts *metav1.DeleteOptions) ([]string, bool) {
	policy := opts.PropagationPolicy
	if policy == nil && opts.OrphanDependents != nil {
		p := metav1.DeletePropagationBackground
		if *opts.OrphanDependents {
			p = metav1.DeletePropagationOrphan
		}
		policy = &p
	}
	if policy == nil {
		if g, ok := s.Resource.Strategy.(GCPolicyer); ok && g.DefaultGarbageCollectionPolicy() == OrphanDependents {
			p := metav1.DeletePropagationOrphan
			policy = &p
		}
	}
	if policy == nil {
		return nil, false
	}
	cur := acc.GetFinalizers()
	var out []string
	for _, f := range cur {
		if f != FinalizerOrphanDependents && f != FinalizerDeleteDependents {
			out = append(out, f)
		}
	}
	switch *policy {
	case metav1.DeletePropagationOrphan:
		out = append(out, FinalizerOrphanDependents)
	case metav1.DeletePropagationForeground:
		out = append(out, FinalizerDeleteDependents)
	}
	if len(out) == len(cur) {
		same := true
		for i := range out {
			same = same && out[i] == cur[i]
		}
		if same {
			return cur, false
		}
	}
	return out, true
}

func validateDeleteOptions(opts *metav1.DeleteOptions) field.ErrorList {
	var errs field.ErrorList
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil {
		errs = append(errs, field.Invalid(field.NewPath("propagationPolicy"), *opts.PropagationPolicy, "orphanDependents and deletionPropagation cannot be both set"))
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("propagationPolicy"), *p, []string{string(metav1.DeletePropagationForeground), string(metav1.DeletePropagationBackground), string(metav1.DeletePropagationOrphan), "nil"}))
		}
	}
	if g := opts.GracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(field.NewPath("gracePeriodSeconds"), *g, "must be greater than or equal to 0"))
	}
	for i, d := range opts.DryRun {
		if d != metav1.DryRunAll {
			errs = append(errs, field.NotSupported(field.NewPath("dryRun").Index(i), d, []string{metav1.DryRunAll}))
		}
	}
	return errs
}

// DeleteCollection deletes every object in ns matching listOpts.
func (s *Store) DeleteCollection(ctx context.Context, ns string, listOpts *metav1.ListOptions, opts *metav1.DeleteOptions) error {
	list, err := s.List(ctx, ns, listOpts)
	if err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	for _, item := range items {
		acc, err := meta.Accessor(item)
		if err != nil {
			return err
		}
		if _, _, err := s.Delete(ctx, acc.GetNamespace(), acc.GetName(), opts); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
