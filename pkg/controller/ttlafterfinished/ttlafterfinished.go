// Package ttlafterfinished deletes finished Jobs whose
// spec.ttlSecondsAfterFinished has passed, as upstream's TTL-after-finished
// controller does: the clock starts at the job's completion (or failure)
// time, the job is checked once more against the API server before it
// goes, and it is deleted in the foreground so its pods go first.
package ttlafterfinished

import (
	"context"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/workers"
)

// Controller deletes expired finished jobs.
type Controller struct {
	client kubernetes.Interface
	jobs   batchlisters.JobLister
	queue  workqueue.TypedRateLimitingInterface[string]
	clock  clock.WithTicker
	log    *slog.Logger
}

// New returns the controller over f's Job informer.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, jobs: f.Batch().V1().Jobs().Lister(), clock: clk, log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ttl_jobs_to_delete", Clock: clk}),
	}
	enqueue := func(obj any) {
		if j, ok := obj.(*batchv1.Job); ok && j.Spec.TTLSecondsAfterFinished != nil && j.DeletionTimestamp == nil {
			if _, ok := finishedAt(j); ok {
				c.queue.Add(j.Namespace + "/" + j.Name)
			}
		}
	}
	_, err := f.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	return c, err
}

// Run runs n workers until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

// finishedAt is when the job completed or failed.
func finishedAt(j *batchv1.Job) (time.Time, bool) {
	for _, cond := range j.Status.Conditions {
		if (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) && cond.Status == corev1.ConditionTrue {
			if j.Status.CompletionTime != nil && cond.Type == batchv1.JobComplete {
				return j.Status.CompletionTime.Time, true
			}
			return cond.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// expiresIn is how long until j may be deleted (<= 0: now); ok is false
// when it never expires.
func (c *Controller) expiresIn(j *batchv1.Job) (time.Duration, bool) {
	if j.Spec.TTLSecondsAfterFinished == nil || j.DeletionTimestamp != nil {
		return 0, false
	}
	at, ok := finishedAt(j)
	if !ok {
		return 0, false
	}
	return at.Add(time.Duration(*j.Spec.TTLSecondsAfterFinished) * time.Second).Sub(c.clock.Now()), true
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	j, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if left, ok := c.expiresIn(j); !ok || left > 0 {
		if ok {
			c.queue.AddAfter(key, left)
		}
		return nil
	}
	// The cache may be stale (the TTL may have been changed): look again.
	fresh, err := c.client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if left, ok := c.expiresIn(fresh); !ok || left > 0 {
		if ok {
			c.queue.AddAfter(key, left)
		}
		return nil
	}
	fg := metav1.DeletePropagationForeground
	err = c.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: &fg,
		Preconditions:     &metav1.Preconditions{UID: &fresh.UID, ResourceVersion: &fresh.ResourceVersion},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err == nil {
		c.log.Info("deleted finished job past its TTL", "job", key)
	}
	return err
}
