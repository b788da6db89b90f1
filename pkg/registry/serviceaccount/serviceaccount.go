// Package serviceaccount is the registry strategy for core/v1
// serviceaccounts, and gives every namespace its "default" account the
// moment the namespace is created (see WithDefaultAccount).
package serviceaccount

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/storage"
)

// DefaultName is the service account every namespace has.
const DefaultName = "default"

// NewResource describes the serviceaccounts resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("serviceaccounts"),
		Kind:                 "ServiceAccount",
		SingularName:         "serviceaccount",
		ShortNames:           []string{"sa"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.ServiceAccount{} },
		NewList:              func() runtime.Object { return &corev1.ServiceAccountList{} },
		Strategy:             registry.DefaultStrategy{},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Secrets", Type: "string", Description: corev1.ServiceAccount{}.SwaggerDoc()["secrets"]},
				registry.AgeColumn,
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				s := obj.(*corev1.ServiceAccount)
				return []interface{}{s.Name, int64(len(s.Secrets)), registry.Age(s.CreationTimestamp, now)}
			},
		},
	}
}

// EnsureDefault creates the default service account of namespace through
// accounts (the serviceaccounts store) unless it exists.
func EnsureDefault(ctx context.Context, accounts *registry.Store, namespace string) error {
	_, err := accounts.Create(ctx, namespace, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultName}}, registry.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// WithDefaultAccount decorates the namespaces' storage: once a namespace
// is stored, ensure creates its default service account, before the
// create request is answered. A failure is logged, not returned: the
// namespace exists either way.
//
// This stands in for upstream's serviceaccounts controller until skiff
// has one; unlike the controller it does not recreate a deleted default
// account (bootstrap does, at the next start).
func WithDefaultAccount(namespaces storage.Store, ensure func(ctx context.Context, namespace string) error, log *slog.Logger) storage.Store {
	return namespaceStorage{Store: namespaces, ensure: ensure, log: log}
}

type namespaceStorage struct {
	storage.Store
	ensure func(ctx context.Context, namespace string) error
	log    *slog.Logger
}

// Create implements storage.Store.
func (s namespaceStorage) Create(ctx context.Context, key string, obj runtime.Object, reservations []string, out runtime.Object) error {
	if err := s.Store.Create(ctx, key, obj, reservations, out); err != nil {
		return err
	}
	if ns, ok := out.(*corev1.Namespace); ok {
		if err := s.ensure(ctx, ns.Name); err != nil {
			s.log.Warn("create default service account", "namespace", ns.Name, "err", err)
		}
	}
	return nil
}
