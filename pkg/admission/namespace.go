// Package admission holds the API server's built-in admission plugins:
// checks and mutations that apply across resources, run by the registry
// before every write.
package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry"
)

// NamespaceGetter reads a namespace.
type NamespaceGetter func(ctx context.Context, name string) (*corev1.Namespace, error)

// NamespaceLifecycle rejects new objects in namespaces that do not exist or
// are being terminated, as upstream's NamespaceLifecycle plugin does.
type NamespaceLifecycle struct {
	Get NamespaceGetter
}

var _ registry.Admitter = NamespaceLifecycle{}

// Admit implements registry.Admitter.
func (n NamespaceLifecycle) Admit(ctx context.Context, a *registry.Attributes) error {
	if a.Operation != registry.Create || !a.Resource.Namespaced || a.Namespace == "" {
		return nil
	}
	ns, err := n.Get(ctx, a.Namespace)
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), a.Namespace)
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		e := apierrors.NewForbidden(a.Resource.GroupResource(), a.Name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.Namespace))
		e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    corev1.NamespaceTerminatingCause,
			Message: fmt.Sprintf("namespace %s is being terminated", a.Namespace),
			Field:   "metadata.namespace",
		})
		return e
	}
	return nil
}

// NamespaceGetterFrom reads namespaces through the namespaces registry store.
func NamespaceGetterFrom(store *registry.Store) NamespaceGetter {
	return func(ctx context.Context, name string) (*corev1.Namespace, error) {
		obj, err := store.Get(ctx, "", name, &metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return obj.(*corev1.Namespace), nil
	}
}

var _ runtime.Object = (*corev1.Namespace)(nil)
