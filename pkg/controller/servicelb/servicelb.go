// Package servicelb makes LoadBalancer Services usable on bare metal as
// k3s's service load balancer does: their status.loadBalancer.ingress
// lists the addresses of the cluster's Ready nodes (external addresses
// where nodes have them, else internal ones), since every node forwards
// the Service's node ports. Services with a spec.loadBalancerClass belong
// to another implementation and are left alone.
package servicelb

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// Controller keeps LoadBalancer Services' ingress addresses.
type Controller struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New returns the controller over f's informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, services: f.Core().V1().Services().Lister(), nodes: f.Core().V1().Nodes().Lister(), log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "servicelb"}),
	}
	enqueue := func(s *corev1.Service) {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer || len(s.Status.LoadBalancer.Ingress) > 0 {
			c.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
	if _, err := f.Core().V1().Services().Informer().AddEventHandler(typedhandler.Funcs(
		enqueue, func(_, s *corev1.Service) { enqueue(s) }, nil,
	)); err != nil {
		return nil, err
	}
	// Any node change may change every LoadBalancer's addresses.
	all := func(*corev1.Node) { c.enqueueAll() }
	_, err := f.Core().V1().Nodes().Informer().AddEventHandler(typedhandler.Funcs(
		all, func(old, n *corev1.Node) {
			if ready(old) != ready(n) || !apiequality.Semantic.DeepEqual(old.Status.Addresses, n.Status.Addresses) {
				c.enqueueAll()
			}
		}, all,
	))
	return c, err
}

func (c *Controller) enqueueAll() {
	svcs, _ := c.services.List(labels.Everything())
	for _, s := range svcs {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			c.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
}

// Run runs n workers until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func ready(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Addresses are the ingress IPs of LoadBalancers: each Ready node's
// external address, or its internal one when it has none, sorted.
func Addresses(nodes []*corev1.Node) []string {
	var out []string
	for _, n := range nodes {
		if !ready(n) || n.Spec.Unschedulable {
			continue
		}
		var internal, external string
		for _, a := range n.Status.Addresses {
			switch {
			case a.Type == corev1.NodeExternalIP && external == "":
				external = a.Address
			case a.Type == corev1.NodeInternalIP && internal == "":
				internal = a.Address
			}
		}
		if external != "" {
			out = append(out, external)
		} else if internal != "" {
			out = append(out, internal)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var want []corev1.LoadBalancerIngress
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil {
		nodes, err := c.nodes.List(labels.Everything())
		if err != nil {
			return err
		}
		for _, ip := range Addresses(nodes) {
			want = append(want, corev1.LoadBalancerIngress{IP: ip, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)})
		}
	} else if svc.Spec.LoadBalancerClass != nil {
		return nil // another implementation's
	}
	if apiequality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, want) {
		return nil
	}
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = want
	if _, err := c.client.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // the newer object brings another sync
		}
		return fmt.Errorf("update status of service %s: %w", key, err)
	}
	return nil
}
