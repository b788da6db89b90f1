// Package namespace is the registry strategy for core/v1 namespaces.
//
// Deleting a namespace does not remove it at once: it moves to phase
// Terminating (with a deletionTimestamp) and stays until the namespace
// controller has deleted its contents and emptied spec.finalizers through
// the finalize subresource, as upstream does.
package namespace

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/registry"
)

// Protected namespaces may never be deleted.
var Protected = map[string]bool{metav1.NamespaceDefault: true, metav1.NamespaceSystem: true, metav1.NamespacePublic: true}

// NewResource describes the namespaces resource; clk stamps deletion.
func NewResource(clk clock.PassiveClock) *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("namespaces"),
		Kind:                 "Namespace",
		SingularName:         "namespace",
		ShortNames:           []string{"ns"},
		New:                  func() runtime.Object { return &corev1.Namespace{} },
		NewList:              func() runtime.Object { return &corev1.NamespaceList{} },
		Strategy:             strategy{clock: clk},
		Status:               registry.StatusOnly{},
		ReturnDeletedObject:  true,
		Fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
		},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Status", Type: "string", Description: "The status of the namespace"},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				ns := obj.(*corev1.Namespace)
				return []interface{}{ns.Name, string(ns.Status.Phase), registry.Age(ns.CreationTimestamp, now)}
			},
		},
	}
}

// FinalizeSubresource serves namespaces/finalize, through which the
// namespace controller empties spec.finalizers once a namespace is clean.
func FinalizeSubresource(store *registry.Store) registry.Subresource {
	return registry.Subresource{
		Name:  "finalize",
		Kind:  "Namespace",
		Verbs: []string{"update"},
		Update: func(ctx context.Context, name string, obj runtime.Object, dryRun bool) (runtime.Object, error) {
			want := obj.(*corev1.Namespace)
			out, _, err := store.Update(ctx, "", name, func(_ context.Context, old runtime.Object) (runtime.Object, error) {
				if old == nil {
					return nil, apierrors.NewNotFound(corev1.Resource("namespaces"), name)
				}
				ns := old.(*corev1.Namespace)
				if want.ResourceVersion != "" && want.ResourceVersion != ns.ResourceVersion {
					return nil, apierrors.NewConflict(corev1.Resource("namespaces"), name, errConflict)
				}
				ns.Spec.Finalizers = want.Spec.Finalizers
				return ns, nil
			}, registry.UpdateOptions{DryRun: dryRun, Subresource: "finalize", SubresourceStrategy: finalizeStrategy{}})
			if err != nil {
				return nil, err
			}
			ns := out.(*corev1.Namespace)
			if ns.DeletionTimestamp != nil && len(ns.Spec.Finalizers) == 0 && len(ns.Finalizers) == 0 {
				deleted, _, err := store.Delete(ctx, "", name, &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ns.UID}})
				if err != nil && !apierrors.IsNotFound(err) {
					return nil, err
				}
				if deleted != nil {
					return deleted, nil
				}
			}
			return ns, nil
		},
	}
}

// finalizeStrategy lets the finalize subresource change only spec.finalizers.
type finalizeStrategy struct{}

func (finalizeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns := obj.(*corev1.Namespace)
	finalizers := ns.Spec.Finalizers
	*ns = *old.(*corev1.Namespace).DeepCopy()
	ns.Spec.Finalizers = finalizers
}

func (finalizeStrategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validateFinalizers(obj.(*corev1.Namespace).Spec.Finalizers)
}

type strategy struct {
	registry.DefaultStrategy
	clock clock.PassiveClock
}

func (strategy) NameValidation() registry.NameRule { return apivalidation.NameIsDNSLabel }

func (strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	if !hasFinalizer(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	}
}

func (strategy) Default(obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	// Upstream labels every namespace with its own name.
	ns.Labels[corev1.LabelMetadataName] = ns.Name
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validateFinalizers(obj.(*corev1.Namespace).Spec.Finalizers)
}

func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	ns.Spec.Finalizers = oldNS.Spec.Finalizers
	ns.Status = oldNS.Status
}

func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validateFinalizers(obj.(*corev1.Namespace).Spec.Finalizers)
}

// BeforeDelete moves a namespace to Terminating; it is removed only when
// its finalizers are gone.
func (s strategy) BeforeDelete(_ context.Context, obj runtime.Object, _ *metav1.DeleteOptions) (bool, error) {
	ns := obj.(*corev1.Namespace)
	if Protected[ns.Name] {
		return false, apierrors.NewForbidden(corev1.Resource("namespaces"), ns.Name, errProtected)
	}
	if ns.DeletionTimestamp == nil {
		now := metav1.NewTime(s.clock.Now().Truncate(time.Second))
		ns.DeletionTimestamp = &now
		zero := int64(0)
		ns.DeletionGracePeriodSeconds = &zero
	}
	ns.Status.Phase = corev1.NamespaceTerminating
	return len(ns.Spec.Finalizers) > 0 || len(ns.Finalizers) > 0, nil
}

// HoldsDeletion implements registry.DeletionHolder: a deleted namespace
// stays until spec.finalizers is empty too.
func (strategy) HoldsDeletion(obj runtime.Object) bool {
	return len(obj.(*corev1.Namespace).Spec.Finalizers) > 0
}

func validateFinalizers(fs []corev1.FinalizerName) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec", "finalizers")
	for i, f := range fs {
		for _, msg := range validation.IsQualifiedName(string(f)) {
			errs = append(errs, field.Invalid(p.Index(i), f, msg))
		}
	}
	return errs
}

func hasFinalizer(fs []corev1.FinalizerName, f corev1.FinalizerName) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

type sentinel string

func (s sentinel) Error() string { return string(s) }

const (
	errProtected = sentinel("this namespace may not be deleted")
	errConflict  = sentinel(registry.OptimisticLockErrorMsg)
)
