// Package resourcequota is the resource quota controller: it keeps every
// ResourceQuota's status.hard equal to spec.hard and status.used to the
// usage of the objects it tracks, recounting a namespace whenever a quota
// or a tracked object in it changes, and all of them periodically, as
// upstream's controller does.
package resourcequota

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff/skiff/pkg/controller/workers"
	"github.com/skiff/skiff/pkg/quota"
)

// ResyncPeriod is how often every namespace with quotas is recounted.
const ResyncPeriod = 5 * time.Minute

// tracked is one kind of counted object and its informer.
type tracked struct {
	gr       schema.GroupResource
	informer cache.SharedIndexInformer
}

// Controller computes quota status.
type Controller struct {
	client  kubernetes.Interface
	quotas  corelisters.ResourceQuotaLister
	tracked []tracked
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
}

// New returns a Controller fed by f's informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client,
		quotas: f.Core().V1().ResourceQuotas().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "resourcequota"}),
		log: log,
	}
	core, apps, batch := f.Core().V1(), f.Apps().V1(), f.Batch().V1()
	c.tracked = []tracked{
		{schema.GroupResource{Resource: "pods"}, core.Pods().Informer()},
		{schema.GroupResource{Resource: "services"}, core.Services().Informer()},
		{schema.GroupResource{Resource: "secrets"}, core.Secrets().Informer()},
		{schema.GroupResource{Resource: "configmaps"}, core.ConfigMaps().Informer()},
		{schema.GroupResource{Resource: "replicationcontrollers"}, core.ReplicationControllers().Informer()},
		{schema.GroupResource{Resource: "resourcequotas"}, core.ResourceQuotas().Informer()},
		{schema.GroupResource{Resource: "persistentvolumeclaims"}, core.PersistentVolumeClaims().Informer()},
		{schema.GroupResource{Group: "apps", Resource: "deployments"}, apps.Deployments().Informer()},
		{schema.GroupResource{Group: "apps", Resource: "replicasets"}, apps.ReplicaSets().Informer()},
		{schema.GroupResource{Group: "apps", Resource: "statefulsets"}, apps.StatefulSets().Informer()},
		{schema.GroupResource{Group: "apps", Resource: "daemonsets"}, apps.DaemonSets().Informer()},
		{schema.GroupResource{Group: "batch", Resource: "jobs"}, batch.Jobs().Informer()},
		{schema.GroupResource{Group: "batch", Resource: "cronjobs"}, batch.CronJobs().Informer()},
	}
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if m, err := metaNamespace(obj); err == nil && m != "" {
			c.queue.Add(m)
		}
	}
	// Admission charges creations to status.used at once, so a recount on
	// them (or on any change that leaves usage alone, as a pod's status
	// updates) would count from caches that may not show the newest
	// objects yet and undo those charges: recounts follow what frees or
	// changes usage (deletions, usage-changing updates) and changes of the
	// quotas themselves, as upstream's replenishment does.
	for _, t := range c.tracked {
		h := cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, obj any) {
				if usageChanged(t.gr, old, obj) {
					enqueue(obj)
				}
			},
			DeleteFunc: enqueue,
		}
		if t.gr.Resource == "resourcequotas" {
			h = cache.ResourceEventHandlerFuncs{
				AddFunc: enqueue,
				UpdateFunc: func(old, obj any) {
					if quotaNeedsCount(old, obj) {
						enqueue(obj)
					}
				},
			}
		}
		if _, err := t.informer.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// usageChanged reports whether an update changed what the object counts
// for in quotas (its usage, or for a pod the deadline the Terminating
// scopes look at).
func usageChanged(gr schema.GroupResource, old, cur any) bool {
	o, ok1 := old.(runtime.Object)
	n, ok2 := cur.(runtime.Object)
	if !ok1 || !ok2 {
		return true
	}
	if op, ok := o.(*corev1.Pod); ok {
		if np, ok := n.(*corev1.Pod); ok && !apiequality.Semantic.DeepEqual(op.Spec.ActiveDeadlineSeconds, np.Spec.ActiveDeadlineSeconds) {
			return true
		}
	}
	return !apiequality.Semantic.DeepEqual(quota.Usage(gr, o), quota.Usage(gr, n))
}

// quotaNeedsCount reports whether a quota update needs a recount: its
// spec changed, or its status does not show the spec's hard limits yet.
// (Admission's charges to status.used do not.)
func quotaNeedsCount(old, cur any) bool {
	o, ok1 := old.(*corev1.ResourceQuota)
	n, ok2 := cur.(*corev1.ResourceQuota)
	if !ok1 || !ok2 {
		return true
	}
	return !apiequality.Semantic.DeepEqual(o.Spec, n.Spec) || !apiequality.Semantic.DeepEqual(n.Spec.Hard, n.Status.Hard)
}

func metaNamespace(obj any) (string, error) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return "", err
	}
	ns, _, err := cache.SplitMetaNamespaceKey(key)
	return ns, err
}

// Run recounts namespaces until ctx ends, all of them every ResyncPeriod.
func (c *Controller) Run(ctx context.Context, n int) {
	go func() {
		t := time.NewTicker(ResyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				qs, _ := c.quotas.List(labels.Everything())
				for _, q := range qs {
					c.queue.Add(q.Namespace)
				}
			}
		}
	}()
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, ns string) error {
	qs, err := c.quotas.ResourceQuotas(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, q := range qs {
		used, err := c.usage(q)
		if err != nil {
			return err
		}
		if apiequality.Semantic.DeepEqual(q.Status.Hard, q.Spec.Hard) && apiequality.Semantic.DeepEqual(q.Status.Used, used) {
			continue
		}
		q = q.DeepCopy()
		q.Status.Hard = q.Spec.Hard.DeepCopy()
		q.Status.Used = used
		_, err = c.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			c.queue.Add(ns)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// usage totals what the objects in q's namespace charge to q.
func (c *Controller) usage(q *corev1.ResourceQuota) (corev1.ResourceList, error) {
	used := quota.Zero(q)
	for _, t := range c.tracked {
		objs, err := t.informer.GetIndexer().ByIndex(cache.NamespaceIndex, q.Namespace)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			obj, ok := o.(runtime.Object)
			if !ok || !quota.Matches(q, obj) {
				continue
			}
			used = quota.Add(used, quota.Filter(q, quota.Usage(t.gr, obj)))
		}
	}
	return used, nil
}
