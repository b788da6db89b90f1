package plugins

import (
	"context"
	"math"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// NodeResourcesFit rejects nodes without room for the pod's requests and
// scores the rest by how much stays free (LeastAllocated, cpu and memory
// weighted equally).
type NodeResourcesFit struct{}

func (NodeResourcesFit) Name() string { return "NodeResourcesFit" }

func (NodeResourcesFit) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	var reasons []string
	if int64(len(ni.Pods))+1 > ni.AllowedPods {
		reasons = append(reasons, "Too many pods")
	}
	req, used, alloc := &pod.Requests, &ni.Requested, &ni.Allocatable
	if req.MilliCPU > 0 && req.MilliCPU > alloc.MilliCPU-used.MilliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if req.Memory > 0 && req.Memory > alloc.Memory-used.Memory {
		reasons = append(reasons, "Insufficient memory")
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > alloc.EphemeralStorage-used.EphemeralStorage {
		reasons = append(reasons, "Insufficient ephemeral-storage")
	}
	for name, v := range req.Scalar {
		if v > 0 && v > alloc.Scalar[name]-used.Scalar[name] {
			reasons = append(reasons, "Insufficient "+string(name))
		}
	}
	if len(reasons) > 0 {
		return framework.NewStatus(framework.Unschedulable, reasons...)
	}
	return nil
}

// Score is the mean free fraction of cpu and memory after placing the pod.
func (NodeResourcesFit) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) int64 {
	cpu := leastAllocated(ni.NonZeroRequested.MilliCPU+pod.NonZero.MilliCPU, ni.Allocatable.MilliCPU)
	mem := leastAllocated(ni.NonZeroRequested.Memory+pod.NonZero.Memory, ni.Allocatable.Memory)
	return (cpu + mem) / 2
}

func leastAllocated(requested, capacity int64) int64 {
	if capacity == 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * framework.MaxNodeScore / capacity
}

// BalancedAllocation prefers nodes where cpu and memory would be used in
// similar proportions.
type BalancedAllocation struct{}

func (BalancedAllocation) Name() string { return "NodeResourcesBalancedAllocation" }

func (BalancedAllocation) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) int64 {
	frac := func(req, capacity int64) float64 {
		if capacity == 0 {
			return 0
		}
		f := float64(req) / float64(capacity)
		return math.Min(f, 1)
	}
	cpu := frac(ni.NonZeroRequested.MilliCPU+pod.NonZero.MilliCPU, ni.Allocatable.MilliCPU)
	mem := frac(ni.NonZeroRequested.Memory+pod.NonZero.Memory, ni.Allocatable.Memory)
	// Standard deviation of the two fractions is |cpu-mem|/2.
	std := math.Abs(cpu-mem) / 2
	return int64((1 - std) * float64(framework.MaxNodeScore))
}

// NodePorts rejects nodes where a host port the pod asks for is taken.
type NodePorts struct{}

func (NodePorts) Name() string { return "NodePorts" }

func (NodePorts) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	for _, p := range pod.HostPorts {
		if portConflict(ni.UsedPorts, p) {
			return framework.NewStatus(framework.Unschedulable, "node(s) didn't have free ports for the requested pod ports")
		}
	}
	return nil
}

// portConflict: the same protocol and port conflict when either side binds
// all addresses or both bind the same one.
func portConflict(used map[string]int, p corev1.ContainerPort) bool {
	if len(used) == 0 {
		return false
	}
	want := framework.PortKey(p)
	if used[want] > 0 {
		return true
	}
	any := p
	any.HostIP = "0.0.0.0"
	if used[framework.PortKey(any)] > 0 {
		return true
	}
	if p.HostIP == "" || p.HostIP == "0.0.0.0" {
		// The pod binds every address: any use of the port conflicts.
		for k := range used {
			if samePort(k, want) {
				return true
			}
		}
	}
	return false
}

// samePort compares "proto/ip/port" keys ignoring the ip.
func samePort(a, b string) bool {
	ap, aport := splitKey(a)
	bp, bport := splitKey(b)
	return ap == bp && aport == bport
}

func splitKey(k string) (proto, port string) {
	first, last := -1, -1
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return k[:first], k[last+1:]
}
