package plugins

import (
	"context"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// InterPodAffinity enforces required pod affinity and anti-affinity (the
// incoming pod's, and existing pods' anti-affinity against it) on any
// topology key, and scores preferred terms both ways.
type InterPodAffinity struct{}

// Upstream's reason texts.
const (
	ReasonAffinityRulesNotMatch             = "node(s) didn't match pod affinity rules"
	ReasonAntiAffinityRulesNotMatch         = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingAntiAffinityRulesNotMatch = "node(s) didn't satisfy existing pods anti-affinity rules"
)

// hardPodAffinityWeight is what an existing pod's required affinity term
// that matches the incoming pod adds to its domain's score (upstream's 1).
const hardPodAffinityWeight = 1

type topologyPair struct{ key, value string }

type affinityState struct {
	// existingAnti counts, per domain, existing pods whose required
	// anti-affinity selects the incoming pod.
	existingAnti map[topologyPair]int
	// affinity[i] / anti[i] count, per domain, pods matching the
	// incoming pod's i-th required term.
	affinity, anti []map[topologyPair]int
	// anyAffinityMatch: some pod matches the incoming affinity terms.
	anyAffinityMatch bool
	selfMatches      bool
	scores           map[topologyPair]int64
}

func (InterPodAffinity) Name() string { return "InterPodAffinity" }

func (InterPodAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, snap framework.Snapshot) *framework.Status {
	s := &affinityState{existingAnti: map[topologyPair]int{}}
	ownNS := snap.NamespaceLabels(pod.Pod.Namespace)
	for _, ni := range snap.Nodes() {
		if snap.PodsWithRequiredAntiAffinity() == 0 {
			break
		}
		for _, ex := range ni.PodsWithRequiredAntiAffinity {
			for i := range ex.RequiredAntiAffinity {
				t := &ex.RequiredAntiAffinity[i]
				if v, ok := ni.Node.Labels[t.TopologyKey]; ok && t.Matches(pod.Pod, ownNS) {
					s.existingAnti[topologyPair{t.TopologyKey, v}]++
				}
			}
		}
	}
	if len(pod.RequiredAffinity)+len(pod.RequiredAntiAffinity) > 0 {
		s.affinity = make([]map[topologyPair]int, len(pod.RequiredAffinity))
		s.anti = make([]map[topologyPair]int, len(pod.RequiredAntiAffinity))
		for i := range s.affinity {
			s.affinity[i] = map[topologyPair]int{}
		}
		for i := range s.anti {
			s.anti[i] = map[topologyPair]int{}
		}
		for _, ni := range snap.Nodes() {
			for _, ex := range ni.Pods {
				if ex.Pod.DeletionTimestamp != nil {
					continue
				}
				nsl := snap.NamespaceLabels(ex.Pod.Namespace)
				for i := range pod.RequiredAffinity {
					t := &pod.RequiredAffinity[i]
					if t.Matches(ex.Pod, nsl) {
						s.anyAffinityMatch = true
						if v, ok := ni.Node.Labels[t.TopologyKey]; ok {
							s.affinity[i][topologyPair{t.TopologyKey, v}]++
						}
					}
				}
				for i := range pod.RequiredAntiAffinity {
					t := &pod.RequiredAntiAffinity[i]
					if v, ok := ni.Node.Labels[t.TopologyKey]; ok && t.Matches(ex.Pod, nsl) {
						s.anti[i][topologyPair{t.TopologyKey, v}]++
					}
				}
			}
		}
		s.selfMatches = true
		for i := range pod.RequiredAffinity {
			if !pod.RequiredAffinity[i].Matches(pod.Pod, ownNS) {
				s.selfMatches = false
			}
		}
	}
	state.Write(framework.InterPodAffinityState, s)
	return nil
}

func (InterPodAffinity) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	s := state.Read(framework.InterPodAffinityState).(*affinityState)
	labels := ni.Node.Labels
	// Upstream's order: the pod's affinity, its anti-affinity, then
	// existing pods' anti-affinity.
	if len(pod.RequiredAffinity) > 0 {
		// The first pod of a group that selects itself may go anywhere
		// that has the topology keys.
		first := !s.anyAffinityMatch && s.selfMatches
		for i := range pod.RequiredAffinity {
			key := pod.RequiredAffinity[i].TopologyKey
			v, ok := labels[key]
			if !ok || (!first && s.affinity[i][topologyPair{key, v}] == 0) {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonAffinityRulesNotMatch)
			}
		}
	}
	for i := range pod.RequiredAntiAffinity {
		key := pod.RequiredAntiAffinity[i].TopologyKey
		if v, ok := labels[key]; ok && s.anti[i][topologyPair{key, v}] > 0 {
			return framework.NewStatus(framework.Unschedulable, ReasonAntiAffinityRulesNotMatch)
		}
	}
	for tp, n := range s.existingAnti {
		if v, ok := labels[tp.key]; ok && n > 0 && v == tp.value {
			return framework.NewStatus(framework.Unschedulable, ReasonExistingAntiAffinityRulesNotMatch)
		}
	}
	return nil
}

// PreScore sums, per topology domain, the weights of preferred terms
// between the incoming pod and the pods already there.
func (InterPodAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo, snap framework.Snapshot) {
	s, _ := state.Read(framework.InterPodAffinityState).(*affinityState)
	if s == nil {
		return
	}
	s.scores = map[topologyPair]int64{}
	incoming := len(pod.PreferredAffinity)+len(pod.PreferredAntiAffinity) > 0
	if !incoming && snap.PodsWithAffinity() == 0 {
		return
	}
	ownNS := snap.NamespaceLabels(pod.Pod.Namespace)
	for _, ni := range snap.Nodes() {
		pods := ni.PodsWithAffinity
		if incoming {
			pods = ni.Pods
		}
		for _, ex := range pods {
			nsl := snap.NamespaceLabels(ex.Pod.Namespace)
			add := func(t *framework.AffinityTerm, w int64) {
				if v, ok := ni.Node.Labels[t.TopologyKey]; ok {
					s.scores[topologyPair{t.TopologyKey, v}] += w
				}
			}
			for i := range pod.PreferredAffinity {
				if t := &pod.PreferredAffinity[i]; t.Matches(ex.Pod, nsl) {
					add(&t.AffinityTerm, int64(t.Weight))
				}
			}
			for i := range pod.PreferredAntiAffinity {
				if t := &pod.PreferredAntiAffinity[i]; t.Matches(ex.Pod, nsl) {
					add(&t.AffinityTerm, -int64(t.Weight))
				}
			}
			for i := range ex.RequiredAffinity {
				if t := &ex.RequiredAffinity[i]; t.Matches(pod.Pod, ownNS) {
					add(t, hardPodAffinityWeight)
				}
			}
			for i := range ex.PreferredAffinity {
				if t := &ex.PreferredAffinity[i]; t.Matches(pod.Pod, ownNS) {
					add(&t.AffinityTerm, int64(t.Weight))
				}
			}
			for i := range ex.PreferredAntiAffinity {
				if t := &ex.PreferredAntiAffinity[i]; t.Matches(pod.Pod, ownNS) {
					add(&t.AffinityTerm, -int64(t.Weight))
				}
			}
		}
	}
}

func (InterPodAffinity) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, ni *framework.NodeInfo) int64 {
	s, _ := state.Read(framework.InterPodAffinityState).(*affinityState)
	if s == nil || len(s.scores) == 0 {
		return 0
	}
	var sum int64
	for tp, w := range s.scores {
		if v, ok := ni.Node.Labels[tp.key]; ok && v == tp.value {
			sum += w
		}
	}
	return sum
}

// NormalizeScore maps the sums (which may be negative) onto 0..100.
func (InterPodAffinity) NormalizeScore(_ *framework.CycleState, _ *framework.PodInfo, scores []int64) {
	minMaxNormalize(scores)
}

func minMaxNormalize(scores []int64) {
	if len(scores) == 0 {
		return
	}
	lo, hi := scores[0], scores[0]
	for _, s := range scores {
		lo, hi = min(lo, s), max(hi, s)
	}
	for i, s := range scores {
		if hi == lo {
			scores[i] = 0
			continue
		}
		scores[i] = framework.MaxNodeScore * (s - lo) / (hi - lo)
	}
}

func (InterPodAffinity) SkipScore(state *framework.CycleState, _ *framework.PodInfo) bool {
	s, _ := state.Read(framework.InterPodAffinityState).(*affinityState)
	return s == nil || len(s.scores) == 0
}
