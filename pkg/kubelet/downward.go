package kubelet

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultLimitResources are the limits a container without one gets from
// the node's allocatable when the downward API asks for them, as
// upstream's kubelet defaults them (MergeContainerResourceLimits).
var defaultLimitResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}

// allocatableFunc returns the node's allocatable resources; it is called
// only when a value needs them.
type allocatableFunc func() (corev1.ResourceList, error)

// nodeAllocatable is the kubelet's node's status.allocatable, from the
// node informer if it runs, else from the API.
func (k *Kubelet) nodeAllocatable(ctx context.Context) (corev1.ResourceList, error) {
	if k.nodes != nil {
		n, err := k.nodes.Get(k.cfg.NodeName)
		if err == nil {
			return n.Status.Allocatable, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("node %q: %w", k.cfg.NodeName, err)
		}
	}
	if k.cfg.Client == nil {
		return nil, fmt.Errorf("node %q: no API client", k.cfg.NodeName)
	}
	n, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to find node object %q: %w", k.cfg.NodeName, err)
	}
	return n.Status.Allocatable, nil
}

// allocatableOnce wraps nodeAllocatable so one environment or volume asks
// for the node at most once.
func (k *Kubelet) allocatableOnce(ctx context.Context) allocatableFunc {
	var (
		done bool
		list corev1.ResourceList
		err  error
	)
	return func() (corev1.ResourceList, error) {
		if !done {
			list, err = k.nodeAllocatable(ctx)
			done = true
		}
		return list, err
	}
}

// resourceField resolves a downward-API resource selector (limits.cpu,
// requests.memory, limits.hugepages-2Mi, ...) for container c of pod p (or
// the container the selector names), in the divisor's units rounded up, as
// upstream does. A limit the container does not set (or sets to zero) of
// cpu, memory or ephemeral-storage is the node's allocatable; a request it
// does not set is its limit if set, else 0.
func resourceField(p *corev1.Pod, c *corev1.Container, ref *corev1.ResourceFieldSelector, allocatable allocatableFunc) (string, error) {
	if ref.ContainerName != "" {
		if c = specContainer(p, ref.ContainerName); c == nil {
			return "", fmt.Errorf("container %q not found", ref.ContainerName)
		}
	}
	if c == nil {
		return "", fmt.Errorf("resource %s: no containerName", ref.Resource)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	res := corev1.ResourceName(name)
	if !ok || (kind != "limits" && kind != "requests") || !downwardResource(res) {
		return "", fmt.Errorf("unsupported container resource: %v", ref.Resource)
	}
	var q resource.Quantity
	switch kind {
	case "limits":
		q, ok = c.Resources.Limits[res]
		if (!ok || q.IsZero()) && isDefaultLimit(res) {
			alloc, err := allocatable()
			if err != nil {
				return "", err
			}
			q = alloc[res]
		}
	case "requests":
		if q, ok = c.Resources.Requests[res]; !ok {
			q = c.Resources.Limits[res]
		}
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if res == corev1.ResourceCPU {
		return strconv.FormatInt(ceilDiv(q.MilliValue(), div.MilliValue()), 10), nil
	}
	return strconv.FormatInt(ceilDiv(q.Value(), div.Value()), 10), nil
}

// downwardResource reports whether the downward API exposes a resource:
// cpu, memory, ephemeral-storage and huge pages.
func downwardResource(name corev1.ResourceName) bool {
	return isDefaultLimit(name) || strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

func isDefaultLimit(name corev1.ResourceName) bool {
	for _, r := range defaultLimitResources {
		if r == name {
			return true
		}
	}
	return false
}

func ceilDiv(a, b int64) int64 {
	if b <= 0 {
		b = 1
	}
	return (a + b - 1) / b
}
