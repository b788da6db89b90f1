package plugins

import (
	"context"

	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// NodeAffinity enforces nodeSelector and required node affinity, and
// scores preferred node affinity terms.
type NodeAffinity struct{}

// ReasonNodeAffinity is upstream's reason text.
const ReasonNodeAffinity = "node(s) didn't match Pod's node affinity/selector"

func (NodeAffinity) Name() string { return "NodeAffinity" }

type nodeAffinityState struct {
	required  nodeaffinity.RequiredNodeAffinity
	preferred *nodeaffinity.PreferredSchedulingTerms
}

func (NodeAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ framework.Snapshot) *framework.Status {
	s := &nodeAffinityState{required: nodeaffinity.GetRequiredNodeAffinity(pod.Pod)}
	if a := pod.Pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		p, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
		if err != nil {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
		}
		s.preferred = p
	}
	state.Write(framework.NodeAffinityState, s)
	return nil
}

func (NodeAffinity) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	s := state.Read(framework.NodeAffinityState).(*nodeAffinityState)
	if ok, _ := s.required.Match(ni.Node); !ok {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonNodeAffinity)
	}
	return nil
}

func (NodeAffinity) Score(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) int64 {
	s := state.Read(framework.NodeAffinityState).(*nodeAffinityState)
	if s.preferred == nil {
		return 0
	}
	return s.preferred.Score(ni.Node)
}

func (NodeAffinity) NormalizeScore(_ *framework.CycleState, _ *framework.PodInfo, scores []int64) {
	framework.DefaultNormalize(scores, false)
}

func (NodeAffinity) SkipScore(state *framework.CycleState, _ *framework.PodInfo) bool {
	s, _ := state.Read(framework.NodeAffinityState).(*nodeAffinityState)
	return s == nil || s.preferred == nil
}
