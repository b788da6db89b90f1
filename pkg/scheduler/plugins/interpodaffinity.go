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
	// existingAnti counts, per topology key and value, existing pods whose
	// required anti-affinity selects the incoming pod.
	existingAnti map[string]map[string]int
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
	s := &affinityState{existingAnti: map[string]map[string]int{}}
	ownNS := snap.NamespaceLabels(pod.Pod.Namespace)
	// Existing pods' anti-affinity, by distinct term.
	for _, tn := range snap.RequiredAntiAffinityTerms() {
		if !tn.Term.Matches(pod.Pod, ownNS) {
			continue
		}
		for name, n := range tn.Nodes {
			if ni := snap.Get(name); ni != nil {
				key := tn.Term.TopologyKey
				if v, ok := ni.Node.Labels[key]; ok {
					if s.existingAnti[key] == nil {
						s.existingAnti[key] = map[string]int{}
					}
					s.existingAnti[key][v] += n
				}
			}
		}
	}
	// The incoming pod's terms, over the pods they select.
	s.affinity = make([]map[topologyPair]int, len(pod.RequiredAffinity))
	for i := range pod.RequiredAffinity {
		t := &pod.RequiredAffinity[i]
		s.affinity[i] = map[topologyPair]int{}
		snap.VisitMatching(t, func(_ *framework.PodInfo, ni *framework.NodeInfo) {
			s.anyAffinityMatch = true
			if v, ok := ni.Node.Labels[t.TopologyKey]; ok {
				s.affinity[i][topologyPair{t.TopologyKey, v}]++
			}
		})
	}
	s.anti = make([]map[topologyPair]int, len(pod.RequiredAntiAffinity))
	for i := range pod.RequiredAntiAffinity {
		t := &pod.RequiredAntiAffinity[i]
		s.anti[i] = map[topologyPair]int{}
		snap.VisitMatching(t, func(_ *framework.PodInfo, ni *framework.NodeInfo) {
			if v, ok := ni.Node.Labels[t.TopologyKey]; ok {
				s.anti[i][topologyPair{t.TopologyKey, v}]++
			}
		})
	}
	s.selfMatches = true
	for i := range pod.RequiredAffinity {
		if !pod.RequiredAffinity[i].Matches(pod.Pod, ownNS) {
			s.selfMatches = false
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
	for key, values := range s.existingAnti {
		if v, ok := labels[key]; ok && values[v] > 0 {
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
	add := func(ni *framework.NodeInfo, key string, w int64) {
		if v, ok := ni.Node.Labels[key]; ok {
			s.scores[topologyPair{key, v}] += w
		}
	}
	// The incoming pod's preferred terms, over the pods they select.
	for i := range pod.PreferredAffinity {
		t := &pod.PreferredAffinity[i]
		snap.VisitMatching(&t.AffinityTerm, func(_ *framework.PodInfo, ni *framework.NodeInfo) { add(ni, t.TopologyKey, int64(t.Weight)) })
	}
	for i := range pod.PreferredAntiAffinity {
		t := &pod.PreferredAntiAffinity[i]
		snap.VisitMatching(&t.AffinityTerm, func(_ *framework.PodInfo, ni *framework.NodeInfo) { add(ni, t.TopologyKey, -int64(t.Weight)) })
	}
	// Existing pods' terms that select the incoming pod.
	if snap.PodsWithScoringAffinity() == 0 {
		return
	}
	ownNS := snap.NamespaceLabels(pod.Pod.Namespace)
	for _, ni := range snap.Nodes() {
		for _, ex := range ni.PodsWithAffinity {
			for i := range ex.RequiredAffinity {
				if t := &ex.RequiredAffinity[i]; t.Matches(pod.Pod, ownNS) {
					add(ni, t.TopologyKey, hardPodAffinityWeight)
				}
			}
			for i := range ex.PreferredAffinity {
				if t := &ex.PreferredAffinity[i]; t.Matches(pod.Pod, ownNS) {
					add(ni, t.TopologyKey, int64(t.Weight))
				}
			}
			for i := range ex.PreferredAntiAffinity {
				if t := &ex.PreferredAntiAffinity[i]; t.Matches(pod.Pod, ownNS) {
					add(ni, t.TopologyKey, -int64(t.Weight))
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
