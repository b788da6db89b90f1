// Package serviceaccount is the serviceaccounts controller: every active
// namespace has a ServiceAccount named "default", recreated when deleted.
// (The API server also creates it with the namespace, see ADR 0004, so it
// exists as soon as the namespace does.)
package serviceaccount

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff/skiff/pkg/controller/workers"
)

// DefaultName is the account every namespace has.
const DefaultName = "default"

// Controller keeps the default ServiceAccount in every namespace.
type Controller struct {
	client     kubernetes.Interface
	namespaces corelisters.NamespaceLister
	accounts   corelisters.ServiceAccountLister
	queue      workqueue.TypedRateLimitingInterface[string]
	log        *slog.Logger
}

// New returns a Controller fed by f's informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client:     client,
		namespaces: f.Core().V1().Namespaces().Lister(),
		accounts:   f.Core().V1().ServiceAccounts().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "serviceaccount"}),
		log: log,
	}
	if _, err := f.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.queue.Add(obj.(*corev1.Namespace).Name) },
		UpdateFunc: func(_, obj any) { c.queue.Add(obj.(*corev1.Namespace).Name) },
	}); err != nil {
		return nil, err
	}
	_, err := f.Core().V1().ServiceAccounts().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if sa, ok := obj.(*corev1.ServiceAccount); ok && sa.Name == DefaultName {
				c.queue.Add(sa.Namespace)
			}
		},
	})
	return c, err
}

// Run processes namespaces until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) { workers.Run(ctx, c.queue, n, c.sync, c.log) }

func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceActive && ns.Status.Phase != "" || ns.DeletionTimestamp != nil {
		return nil
	}
	if _, err := c.accounts.ServiceAccounts(name).Get(DefaultName); err == nil {
		return nil
	}
	_, err = c.client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultName}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) { // the namespace is going
		return nil
	}
	if err == nil {
		c.log.Info("created the default service account", "namespace", name)
	}
	return err
}
