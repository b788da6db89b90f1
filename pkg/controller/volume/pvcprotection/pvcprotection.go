// Package pvcprotection removes the kubernetes.io/pvc-protection
// finalizer from a PersistentVolumeClaim being deleted once no pod of its
// namespace that has not terminated uses it, as upstream's PVC protection
// controller does. Pods are indexed by the claims they use; before the
// finalizer goes the pods are listed from the API server, since a cache
// lagging behind a pod just created must not let a claim in use go.
package pvcprotection

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
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// Finalizer keeps a claim in use by a pod from being removed.
const Finalizer = "kubernetes.io/pvc-protection"

const claimIndex = "claim"

// Controller releases the finalizer of deleted claims no pod uses.
type Controller struct {
	client kubernetes.Interface
	claims corelisters.PersistentVolumeClaimLister
	pods   cache.Indexer
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// New returns the controller over f's PVC and Pod informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	pvcInf, podInf := f.Core().V1().PersistentVolumeClaims(), f.Core().V1().Pods()
	c := &Controller{client: client, claims: pvcInf.Lister(), pods: podInf.Informer().GetIndexer(), log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "pvcprotection", Clock: clk})}
	if err := podInf.Informer().AddIndexers(cache.Indexers{claimIndex: func(obj any) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, nil
		}
		var keys []string
		for _, name := range claimNames(p) {
			keys = append(keys, p.Namespace+"/"+name)
		}
		return keys, nil
	}}); err != nil {
		return nil, fmt.Errorf("indexing pods by claim: %w", err)
	}
	onClaim := func(pvc *corev1.PersistentVolumeClaim) {
		if pvc.DeletionTimestamp != nil && slices.Contains(pvc.Finalizers, Finalizer) {
			c.queue.Add(pvc.Namespace + "/" + pvc.Name)
		}
	}
	if _, err := pvcInf.Informer().AddEventHandler(typedhandler.Funcs(onClaim,
		func(_, pvc *corev1.PersistentVolumeClaim) { onClaim(pvc) }, nil)); err != nil {
		return nil, err
	}
	// A pod that terminates or goes may free its claims.
	onPod := func(p *corev1.Pod) {
		if p.DeletionTimestamp != nil || terminated(p) {
			c.enqueueClaims(p)
		}
	}
	_, err := podInf.Informer().AddEventHandler(typedhandler.Funcs(nil,
		func(_, p *corev1.Pod) { onPod(p) }, c.enqueueClaims))
	return c, err
}

func (c *Controller) enqueueClaims(p *corev1.Pod) {
	for _, name := range claimNames(p) {
		c.queue.Add(p.Namespace + "/" + name)
	}
}

// claimNames are the claims a pod uses: persistentVolumeClaim volumes and
// the claims of its generic ephemeral volumes (named pod-volume).
func claimNames(p *corev1.Pod) []string {
	var names []string
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			names = append(names, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			names = append(names, p.Name+"-"+v.Name)
		}
	}
	return names
}

func terminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// Run runs n workers until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pvc.DeletionTimestamp == nil || !slices.Contains(pvc.Finalizers, Finalizer) {
		return nil
	}
	cached, err := c.pods.ByIndex(claimIndex, key)
	if err != nil {
		return err
	}
	for _, o := range cached {
		if p, ok := o.(*corev1.Pod); ok && !terminated(p) {
			return nil // in use: the pod's termination enqueues the claim again
		}
	}
	live, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods using claim %s: %w", key, err)
	}
	for i := range live.Items {
		if p := &live.Items[i]; !terminated(p) && slices.Contains(claimNames(p), name) {
			return nil
		}
	}
	upd := pvc.DeepCopy()
	upd.Finalizers = slices.DeleteFunc(upd.Finalizers, func(f string) bool { return f == Finalizer })
	if _, err := c.client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, upd, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove %s from claim %s: %w", Finalizer, key, err)
	}
	c.log.Info("removed protection finalizer from unused claim", "claim", key)
	return nil
}
