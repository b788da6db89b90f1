package plugins

import (
	"context"
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// PodTopologySpread enforces topologySpreadConstraints with
// whenUnsatisfiable DoNotSchedule and scores ScheduleAnyway ones. Pods
// without constraints are spread by upstream's system defaults (hostname,
// maxSkew 3; zone, maxSkew 5; ScheduleAnyway) among the pods of the same
// Services and controllers, which DefaultSelector finds.
type PodTopologySpread struct {
	// DefaultSelector selects the pods the incoming pod spreads among
	// when it has no constraints (nil or empty: no default spreading).
	DefaultSelector func(*corev1.Pod) labels.Selector
}

// Upstream's reason texts.
const (
	ReasonTopologySpread             = "node(s) didn't match pod topology spread constraints"
	ReasonTopologySpreadMissingLabel = "node(s) didn't match pod topology spread constraints (missing required label)"
)

type spreadConstraint struct {
	maxSkew     int32
	key         string
	minDomains  int32
	selector    labels.Selector
	selfMatch   int
	counts      map[string]int
	minCount    int
	honorAffine bool
	honorTaints bool
}

type spreadState struct {
	hard, soft []*spreadConstraint
}

func (PodTopologySpread) Name() string { return "PodTopologySpread" }

func (p PodTopologySpread) constraints(pod *corev1.Pod, want corev1.UnsatisfiableConstraintAction) []*spreadConstraint {
	var out []*spreadConstraint
	if len(pod.Spec.TopologySpreadConstraints) == 0 {
		if want != corev1.ScheduleAnyway || p.DefaultSelector == nil {
			return nil
		}
		sel := p.DefaultSelector(pod)
		if sel == nil || sel.Empty() {
			return nil
		}
		return []*spreadConstraint{
			{maxSkew: 3, key: corev1.LabelHostname, selector: sel, honorAffine: true},
			{maxSkew: 5, key: corev1.LabelTopologyZone, selector: sel, honorAffine: true},
		}
	}
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != want {
			continue
		}
		sel, err := framework.LabelSelector(c.LabelSelector)
		if err != nil {
			continue
		}
		for _, k := range c.MatchLabelKeys {
			if v, ok := pod.Labels[k]; ok {
				if r, err := labels.NewRequirement(k, "in", []string{v}); err == nil {
					sel = sel.Add(*r)
				}
			}
		}
		sc := &spreadConstraint{maxSkew: c.MaxSkew, key: c.TopologyKey, selector: sel,
			honorAffine: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints: c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor}
		if c.MinDomains != nil {
			sc.minDomains = *c.MinDomains
		}
		out = append(out, sc)
	}
	return out
}

// count fills each constraint's per-domain counts of matching pods over
// the eligible nodes.
func count(pod *corev1.Pod, cs []*spreadConstraint, nodes []*framework.NodeInfo) {
	if len(cs) == 0 {
		return
	}
	required := nodeaffinity.GetRequiredNodeAffinity(pod)
	for _, c := range cs {
		c.counts = map[string]int{}
		if c.selector.Matches(labels.Set(pod.Labels)) {
			c.selfMatch = 1
		}
	}
	for _, ni := range nodes {
		affine := -1
		for _, c := range cs {
			v, ok := ni.Node.Labels[c.key]
			if !ok {
				continue
			}
			if c.honorTaints && untolerated(pod, ni.Node) {
				continue
			}
			if c.honorAffine {
				if affine < 0 {
					affine = 0
					if ok, _ := required.Match(ni.Node); ok {
						affine = 1
					}
				}
				if affine == 0 {
					continue
				}
			}
			n := c.counts[v]
			for _, ex := range ni.Pods {
				if ex.Pod.Namespace == pod.Namespace && ex.Pod.DeletionTimestamp == nil && c.selector.Matches(labels.Set(ex.Pod.Labels)) {
					n++
				}
			}
			c.counts[v] = n
		}
	}
	for _, c := range cs {
		c.minCount = math.MaxInt
		for _, n := range c.counts {
			c.minCount = min(c.minCount, n)
		}
		if c.minCount == math.MaxInt || int32(len(c.counts)) < c.minDomains {
			c.minCount = 0
		}
	}
}

func (p PodTopologySpread) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, snap framework.Snapshot) *framework.Status {
	s := &spreadState{hard: p.constraints(pod.Pod, corev1.DoNotSchedule)}
	count(pod.Pod, s.hard, snap.Nodes())
	state.Write(framework.PodTopologySpreadState, s)
	return nil
}

func (PodTopologySpread) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	s := state.Read(framework.PodTopologySpreadState).(*spreadState)
	for _, c := range s.hard {
		v, ok := ni.Node.Labels[c.key]
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonTopologySpreadMissingLabel)
		}
		if skew := c.counts[v] + c.selfMatch - c.minCount; skew > int(c.maxSkew) {
			return framework.NewStatus(framework.Unschedulable, ReasonTopologySpread)
		}
	}
	return nil
}

func (p PodTopologySpread) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo, snap framework.Snapshot) {
	s, _ := state.Read(framework.PodTopologySpreadState).(*spreadState)
	if s == nil {
		return
	}
	s.soft = p.constraints(pod.Pod, corev1.ScheduleAnyway)
	count(pod.Pod, s.soft, snap.Nodes())
}

// Score sums the matching pods in the node's domains, each constraint
// weighted by log(domains+2) as upstream; fewer is better.
func (PodTopologySpread) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, ni *framework.NodeInfo) int64 {
	s, _ := state.Read(framework.PodTopologySpreadState).(*spreadState)
	if s == nil {
		return 0
	}
	var score float64
	for _, c := range s.soft {
		if v, ok := ni.Node.Labels[c.key]; ok {
			w := math.Log(float64(len(c.counts) + 2))
			score += float64(c.counts[v]+int(c.maxSkew)-1) * w
		}
	}
	return int64(math.Round(score))
}

func (PodTopologySpread) NormalizeScore(state *framework.CycleState, _ *framework.PodInfo, scores []int64) {
	s, _ := state.Read(framework.PodTopologySpreadState).(*spreadState)
	if s == nil || len(s.soft) == 0 {
		for i := range scores {
			scores[i] = 0
		}
		return
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, sc := range scores {
		lo, hi = min(lo, sc), max(hi, sc)
	}
	for i, sc := range scores {
		if hi == 0 {
			scores[i] = framework.MaxNodeScore
			continue
		}
		scores[i] = framework.MaxNodeScore * (hi + lo - sc) / hi
	}
}

func (PodTopologySpread) SkipScore(state *framework.CycleState, _ *framework.PodInfo) bool {
	s, _ := state.Read(framework.PodTopologySpreadState).(*spreadState)
	return s == nil || len(s.soft) == 0
}

// untolerated reports whether the node has a NoSchedule or NoExecute taint
// the pod does not tolerate.
func untolerated(pod *corev1.Pod, node *corev1.Node) bool {
	for _, t := range EffectiveTaints(node) {
		if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !tolerated(pod.Spec.Tolerations, &t) {
			return true
		}
	}
	return false
}
