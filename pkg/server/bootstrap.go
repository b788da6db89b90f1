package server

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/registry"
)

// systemNamespaces exist in every cluster.
var systemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// bootstrap creates the objects every cluster starts with, if missing.
func bootstrap(ctx context.Context, stores []*registry.Store, cfg Config) error {
	byName := map[string]*registry.Store{}
	for _, s := range stores {
		if s.Resource.Group == "" {
			byName[s.Resource.Resource] = s
		}
	}
	ns := byName["namespaces"]
	for _, name := range systemNamespaces {
		_, err := ns.Create(ctx, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, registry.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	return nil
}
