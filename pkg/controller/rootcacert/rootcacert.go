// Package rootcacert is the root CA certificate publisher: every active
// namespace has a ConfigMap kube-root-ca.crt holding the cluster CA (key
// ca.crt), restored when changed or deleted, as upstream's publisher does
// for projected service account volumes and in-cluster clients.
package rootcacert

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

// Upstream's names.
const (
	ConfigMapName = "kube-root-ca.crt"
	DataKey       = "ca.crt"
	// DescriptionAnnotation is the annotation upstream sets on it.
	DescriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Controller publishes the CA in every namespace.
type Controller struct {
	client     kubernetes.Interface
	ca         string
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
	queue      workqueue.TypedRateLimitingInterface[string]
	log        *slog.Logger
}

// New returns a Controller publishing caPEM, fed by f's informers.
func New(client kubernetes.Interface, caPEM []byte, f informers.SharedInformerFactory, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, ca: string(caPEM),
		namespaces: f.Core().V1().Namespaces().Lister(),
		configMaps: f.Core().V1().ConfigMaps().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "root-ca-cert-publisher"}),
		log: log,
	}
	if _, err := f.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.queue.Add(obj.(*corev1.Namespace).Name) },
		UpdateFunc: func(_, obj any) { c.queue.Add(obj.(*corev1.Namespace).Name) },
	}); err != nil {
		return nil, err
	}
	onCM := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
			c.queue.Add(cm.Namespace)
		}
	}
	_, err := f.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { onCM(obj) },
		DeleteFunc: onCM,
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
	if ns.DeletionTimestamp != nil {
		return nil
	}
	cm, err := c.configMaps.ConfigMaps(name).Get(ConfigMapName)
	if apierrors.IsNotFound(err) {
		_, err = c.client.CoreV1().ConfigMaps(name).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Annotations: map[string]string{DescriptionAnnotation: description}},
			Data:       map[string]string{DataKey: c.ca},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) {
			return nil // raced with ourselves, or the namespace is going
		}
		return err
	}
	if err != nil {
		return err
	}
	if cm.Data[DataKey] == c.ca && len(cm.Data) == 1 && cm.Annotations[DescriptionAnnotation] == description {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = map[string]string{DataKey: c.ca}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[DescriptionAnnotation] = description
	_, err = c.client.CoreV1().ConfigMaps(name).Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		c.queue.Add(name)
		return nil
	}
	return err
}
