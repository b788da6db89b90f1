// Package plugins are the scheduler's filters and scores, one file each,
// named and worded as upstream's so FailedScheduling events read the same:
// NodeUnschedulable, TaintToleration (with node readiness), NodeName,
// NodeResourcesFit (+ LeastAllocated), NodeResourcesBalancedAllocation,
// NodeAffinity, NodePorts, InterPodAffinity, PodTopologySpread (with
// default spreading of a controller's pods), VolumeBinding (local volume
// node affinity) and ImageLocality.
package plugins

import "github.com/skiff/skiff/pkg/scheduler/framework"

// Weighted is a score plugin with its weight.
type Weighted struct {
	Plugin framework.ScorePlugin
	Weight int64
}
