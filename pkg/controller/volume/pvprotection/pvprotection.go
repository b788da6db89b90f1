// Package pvprotection removes the kubernetes.io/pv-protection finalizer
// from a PersistentVolume being deleted once no claim is bound to it
// (its phase is not Bound), as upstream's PV protection controller does.
package pvprotection

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// Finalizer keeps a bound PersistentVolume from being removed.
const Finalizer = "kubernetes.io/pv-protection"

// Controller releases the finalizer of deleted, unbound volumes.
type Controller struct {
	client  kubernetes.Interface
	volumes corelisters.PersistentVolumeLister
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
}

// New returns the controller over f's PersistentVolume informer.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	inf := f.Core().V1().PersistentVolumes()
	c := &Controller{client: client, volumes: inf.Lister(), log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "pvprotection", Clock: clk})}
	enqueue := func(pv *corev1.PersistentVolume) {
		if pv.DeletionTimestamp != nil && slices.Contains(pv.Finalizers, Finalizer) {
			c.queue.Add(pv.Name)
		}
	}
	_, err := inf.Informer().AddEventHandler(typedhandler.Funcs(enqueue, func(_, pv *corev1.PersistentVolume) { enqueue(pv) }, nil))
	return c, err
}

// Run runs n workers until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pv.DeletionTimestamp == nil || !slices.Contains(pv.Finalizers, Finalizer) || pv.Status.Phase == corev1.VolumeBound {
		return nil // a bound volume is resynced when its phase changes
	}
	upd := pv.DeepCopy()
	upd.Finalizers = slices.DeleteFunc(upd.Finalizers, func(f string) bool { return f == Finalizer })
	if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, upd, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove %s from volume %s: %w", Finalizer, name, err)
	}
	c.log.Info("removed protection finalizer from unbound volume", "volume", name)
	return nil
}
