// Package nodeipam gives every Node its pod range (spec.podCIDR and
// spec.podCIDRs): a /24 (by default) of the cluster CIDR, as upstream's
// range allocator does. The ranges Nodes already hold are taken before
// anything is handed out, so a restart never gives one out twice, and a
// deleted Node's range is freed.
package nodeipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/skiff/skiff/pkg/controller/recorder"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

// DefaultMaskSize is the prefix length of an IPv4 node's range
// (upstream's --node-cidr-mask-size).
const DefaultMaskSize = 24

// Controller allocates pod ranges to Nodes.
type Controller struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	alloc    *allocator
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger

	mu sync.Mutex
	// pending holds the ranges patched onto Nodes the cache does not show
	// with them yet, so a stale cache never gets a second one.
	pending map[string]string
}

// New returns the controller for clusterCIDR, handing out ranges of
// maskSize bits.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clusterCIDR string, maskSize int, log *slog.Logger) (*Controller, error) {
	_, cluster, err := net.ParseCIDR(clusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR: %w", err)
	}
	alloc, err := newAllocator(cluster, maskSize)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		client: client, nodes: f.Core().V1().Nodes().Lister(), alloc: alloc, log: log, pending: map[string]string{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeipam"}),
	}
	_, err = f.Core().V1().Nodes().Informer().AddEventHandler(typedhandler.Funcs(
		func(n *corev1.Node) { c.queue.Add(n.Name) },
		func(_, n *corev1.Node) { c.queue.Add(n.Name) },
		func(n *corev1.Node) {
			c.mu.Lock()
			if cidr, ok := c.pending[n.Name]; ok {
				c.alloc.release(cidr)
				delete(c.pending, n.Name)
			}
			c.mu.Unlock()
			for _, cidr := range n.Spec.PodCIDRs {
				c.alloc.release(cidr)
			}
		},
	))
	return c, err
}

// Run takes the ranges the Nodes in the (synced) cache hold, then runs n
// workers until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	c.occupyExisting()
	rec, stop := recorder.Start(ctx, c.client, "cidrAllocator")
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

// occupyExisting takes the ranges the Nodes in the cache hold.
func (c *Controller) occupyExisting() {
	nodes, _ := c.nodes.List(labels.Everything())
	for _, node := range nodes {
		for _, cidr := range node.Spec.PodCIDRs {
			if !c.alloc.occupy(cidr) {
				c.log.Warn("node's pod CIDR is outside the cluster CIDR", "node", node.Name, "cidr", cidr)
			}
		}
	}
}

func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(node.Spec.PodCIDRs) > 0 {
		for _, cidr := range node.Spec.PodCIDRs {
			c.alloc.occupy(cidr)
		}
		delete(c.pending, name)
		return nil
	}
	if _, ok := c.pending[name]; ok {
		return nil // the update that carries it is on its way
	}
	cidr, err := c.alloc.allocate()
	if errors.Is(err, ErrFull) {
		c.recorder.Eventf(node, corev1.EventTypeNormal, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", node.Name)
		return err
	}
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": node.UID},
		"spec":     map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}},
	})
	if err != nil {
		c.alloc.release(cidr)
		return err
	}
	_, err = c.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		c.alloc.release(cidr)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRAssignmentFailed", "Node %s status is now: CIDRAssignmentFailed", node.Name)
		return fmt.Errorf("assign pod CIDR %s to node %s: %w", cidr, name, err)
	}
	c.pending[name] = cidr
	c.log.Info("assigned pod CIDR", "node", name, "cidr", cidr)
	return nil
}
