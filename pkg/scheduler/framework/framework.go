// Package framework holds what the scheduler's plugins share: the view of
// a node with the pods on it (NodeInfo), per-cycle state, filter and score
// plugin interfaces, and the Status a filter rejects a node with.
package framework

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	resourcehelper "k8s.io/component-helpers/resource"
)

// MaxNodeScore is the highest score a score plugin gives a node.
const MaxNodeScore int64 = 100

// Default requests the scoring plugins assume for containers that request
// nothing, as upstream does (so best-effort pods still spread).
const (
	DefaultMilliCPURequest int64 = 100
	DefaultMemoryRequest   int64 = 200 << 20
)

// Resource is an amount of the resources the scheduler accounts for.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// Scalar holds extended resources (example.com/gpu, hugepages-*).
	Scalar map[corev1.ResourceName]int64
}

// Add adds rl to r.
func (r *Resource) Add(rl corev1.ResourceList) {
	for name, q := range rl {
		switch name {
		case corev1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case corev1.ResourceMemory:
			r.Memory += q.Value()
		case corev1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		case corev1.ResourcePods:
		default:
			if r.Scalar == nil {
				r.Scalar = map[corev1.ResourceName]int64{}
			}
			r.Scalar[name] += q.Value()
		}
	}
}

// AddResource adds o to r (sign -1 subtracts).
func (r *Resource) AddResource(o *Resource, sign int64) {
	r.MilliCPU += sign * o.MilliCPU
	r.Memory += sign * o.Memory
	r.EphemeralStorage += sign * o.EphemeralStorage
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[corev1.ResourceName]int64{}
		}
		r.Scalar[k] += sign * v
	}
}

// PodInfo is a pod with what the scheduler derives from it once.
type PodInfo struct {
	Pod *corev1.Pod
	// Requests are the pod's effective requests (init containers,
	// overhead); NonZero uses the default requests where none are given.
	Requests, NonZero Resource
	// Affinity terms, parsed.
	RequiredAffinity, RequiredAntiAffinity   []AffinityTerm
	PreferredAffinity, PreferredAntiAffinity []WeightedAffinityTerm
	HostPorts                                []corev1.ContainerPort
}

// AffinityTerm is a pod (anti-)affinity term with its selectors parsed.
type AffinityTerm struct {
	Namespaces        sets.Set[string]
	NamespaceSelector labels.Selector
	Selector          labels.Selector
	TopologyKey       string
}

// WeightedAffinityTerm is a preferred term.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int32
}

// Key identifies terms that select the same pods in the same topology.
func (t *AffinityTerm) Key() string {
	ns := sets.List(t.Namespaces)
	nsSel := ""
	if t.NamespaceSelector != nil {
		nsSel = t.NamespaceSelector.String()
	}
	return strings.Join(ns, ",") + "|" + nsSel + "|" + t.Selector.String() + "|" + t.TopologyKey
}

// Matches reports whether pod (in a namespace with nsLabels) is selected by
// the term.
func (t *AffinityTerm) Matches(pod *corev1.Pod, nsLabels labels.Set) bool {
	if !t.Namespaces.Has(pod.Namespace) && (t.NamespaceSelector == nil || !t.NamespaceSelector.Matches(nsLabels)) {
		return false
	}
	return t.Selector.Matches(labels.Set(pod.Labels))
}

// NewPodInfo derives a PodInfo.
func NewPodInfo(pod *corev1.Pod) (*PodInfo, error) {
	pi := &PodInfo{Pod: pod}
	pi.Requests.Add(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	pi.NonZero.Add(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		NonMissingContainerRequests: corev1.ResourceList{
			corev1.ResourceCPU:    *resourceMilli(DefaultMilliCPURequest),
			corev1.ResourceMemory: *resourceBytes(DefaultMemoryRequest),
		},
	}))
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				pi.HostPorts = append(pi.HostPorts, p)
			}
		}
	}
	if a := pod.Spec.Affinity; a != nil {
		var err error
		if pa := a.PodAffinity; pa != nil {
			if pi.RequiredAffinity, err = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
				return nil, err
			}
			if pi.PreferredAffinity, err = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
				return nil, err
			}
		}
		if pa := a.PodAntiAffinity; pa != nil {
			if pi.RequiredAntiAffinity, err = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
				return nil, err
			}
			if pi.PreferredAntiAffinity, err = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
				return nil, err
			}
		}
	}
	return pi, nil
}

// HasAffinity reports whether the pod has any pod (anti-)affinity term.
func (pi *PodInfo) HasAffinity() bool {
	return len(pi.RequiredAffinity)+len(pi.RequiredAntiAffinity)+len(pi.PreferredAffinity)+len(pi.PreferredAntiAffinity) > 0
}

func parseTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm) ([]AffinityTerm, error) {
	out := make([]AffinityTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseWeighted(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm) ([]WeightedAffinityTerm, error) {
	out := make([]WeightedAffinityTerm, 0, len(terms))
	for i := range terms {
		t, err := newAffinityTerm(pod, &terms[i].PodAffinityTerm)
		if err != nil {
			return nil, err
		}
		out = append(out, WeightedAffinityTerm{AffinityTerm: t, Weight: terms[i].Weight})
	}
	return out, nil
}

func newAffinityTerm(pod *corev1.Pod, term *corev1.PodAffinityTerm) (AffinityTerm, error) {
	sel, err := labelSelector(term.LabelSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("pod affinity term selector: %w", err)
	}
	// matchLabelKeys / mismatchLabelKeys add the incoming pod's values.
	for _, k := range term.MatchLabelKeys {
		if v, ok := pod.Labels[k]; ok {
			r, err := labels.NewRequirement(k, "in", []string{v})
			if err == nil {
				sel = sel.Add(*r)
			}
		}
	}
	for _, k := range term.MismatchLabelKeys {
		if v, ok := pod.Labels[k]; ok {
			r, err := labels.NewRequirement(k, "notin", []string{v})
			if err == nil {
				sel = sel.Add(*r)
			}
		}
	}
	t := AffinityTerm{Selector: sel, TopologyKey: term.TopologyKey, Namespaces: sets.New(term.Namespaces...)}
	if term.NamespaceSelector != nil {
		if t.NamespaceSelector, err = labelSelector(term.NamespaceSelector); err != nil {
			return AffinityTerm{}, fmt.Errorf("pod affinity term namespace selector: %w", err)
		}
	} else if len(term.Namespaces) == 0 {
		// Neither: the pod's own namespace.
		t.Namespaces.Insert(pod.Namespace)
	}
	return t, nil
}

// NodeInfo is a node with the pods assigned (or assumed) to it.
type NodeInfo struct {
	Node *corev1.Node
	Pods map[types.UID]*PodInfo
	// PodsWithAffinity have any affinity term; PodsWithRequiredAntiAffinity
	// have required anti-affinity (which every incoming pod must respect).
	PodsWithAffinity             map[types.UID]*PodInfo
	PodsWithRequiredAntiAffinity map[types.UID]*PodInfo
	// Requested sums the pods' requests; NonZeroRequested their scoring
	// requests.
	Requested, NonZeroRequested Resource
	Allocatable                 Resource
	AllowedPods                 int64
	// UsedPorts counts host ports in use: "proto/ip/port".
	UsedPorts map[string]int
	// ImageSizes maps every name of an image present on the node to its
	// size.
	ImageSizes map[string]int64
}

// NewNodeInfo returns an empty NodeInfo for node (which may be nil while
// only its pods are known).
func NewNodeInfo(node *corev1.Node) *NodeInfo {
	ni := &NodeInfo{Pods: map[types.UID]*PodInfo{}, PodsWithAffinity: map[types.UID]*PodInfo{},
		PodsWithRequiredAntiAffinity: map[types.UID]*PodInfo{}, UsedPorts: map[string]int{}}
	ni.SetNode(node)
	return ni
}

// SetNode replaces the node object.
func (n *NodeInfo) SetNode(node *corev1.Node) {
	n.Node = node
	n.Allocatable = Resource{}
	n.AllowedPods = 0
	n.ImageSizes = nil
	if node == nil {
		return
	}
	n.Allocatable.Add(node.Status.Allocatable)
	n.AllowedPods = node.Status.Allocatable.Pods().Value()
	if len(node.Status.Images) > 0 {
		n.ImageSizes = map[string]int64{}
		for _, img := range node.Status.Images {
			for _, name := range img.Names {
				n.ImageSizes[normalizeImage(name)] = img.SizeBytes
			}
		}
	}
}

// AddPod accounts for a pod on the node.
func (n *NodeInfo) AddPod(pi *PodInfo) {
	n.Pods[pi.Pod.UID] = pi
	if pi.HasAffinity() {
		n.PodsWithAffinity[pi.Pod.UID] = pi
	}
	if len(pi.RequiredAntiAffinity) > 0 {
		n.PodsWithRequiredAntiAffinity[pi.Pod.UID] = pi
	}
	n.Requested.AddResource(&pi.Requests, 1)
	n.NonZeroRequested.AddResource(&pi.NonZero, 1)
	for _, p := range pi.HostPorts {
		n.UsedPorts[PortKey(p)]++
	}
}

// RemovePod undoes AddPod; it reports whether the pod was there.
func (n *NodeInfo) RemovePod(uid types.UID) bool {
	pi, ok := n.Pods[uid]
	if !ok {
		return false
	}
	delete(n.Pods, uid)
	delete(n.PodsWithAffinity, uid)
	delete(n.PodsWithRequiredAntiAffinity, uid)
	n.Requested.AddResource(&pi.Requests, -1)
	n.NonZeroRequested.AddResource(&pi.NonZero, -1)
	for _, p := range pi.HostPorts {
		k := PortKey(p)
		if n.UsedPorts[k]--; n.UsedPorts[k] <= 0 {
			delete(n.UsedPorts, k)
		}
	}
	return true
}

// PortKey identifies a host port: protocol, host IP (0.0.0.0 when unset)
// and port.
func PortKey(p corev1.ContainerPort) string {
	proto, ip := p.Protocol, p.HostIP
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s/%s/%d", proto, ip, p.HostPort)
}

// normalizeImage adds the default registry and tag the way node status
// reports image names ("nginx" -> "docker.io/library/nginx:latest").
func normalizeImage(name string) string {
	if !strings.Contains(name, ":") && !strings.Contains(name, "@") {
		name += ":latest"
	}
	return name
}

// NormalizeImage is normalizeImage for plugins.
func NormalizeImage(name string) string { return normalizeImage(name) }

// Code says what a Status means.
type Code int

// Status codes.
const (
	Success Code = iota
	// Unschedulable: the node does not fit; other nodes may.
	Unschedulable
	// UnschedulableAndUnresolvable: nothing but a change to the node
	// (or the pod) helps.
	UnschedulableAndUnresolvable
	// Error: the plugin failed.
	Error
)

// Status is a plugin's verdict; nil means success.
type Status struct {
	Code    Code
	Reasons []string
}

// NewStatus returns a Status with the given reasons.
func NewStatus(code Code, reasons ...string) *Status { return &Status{Code: code, Reasons: reasons} }

// IsSuccess reports whether s is a success.
func (s *Status) IsSuccess() bool { return s == nil || s.Code == Success }

// StateKey names a plugin's slot in the CycleState.
type StateKey int

// The plugins' state slots.
const (
	NodeAffinityState StateKey = iota
	VolumeBindingState
	InterPodAffinityState
	PodTopologySpreadState
	ImageLocalityState
	numStateKeys
)

// CycleState carries what PreFilter/PreScore computed for one pod through
// the cycle (read for every node, so a slice rather than a map).
type CycleState struct {
	data [numStateKeys]any
}

// NewCycleState returns an empty CycleState.
func NewCycleState() *CycleState { return &CycleState{} }

// Write stores v under key.
func (c *CycleState) Write(key StateKey, v any) { c.data[key] = v }

// Read returns what is stored under key.
func (c *CycleState) Read(key StateKey) any { return c.data[key] }

// Snapshot is the cluster as one scheduling cycle sees it.
type Snapshot interface {
	// Nodes lists every node (with a Node object), in a stable order.
	Nodes() []*NodeInfo
	// Get returns one node's info.
	Get(name string) *NodeInfo
	// NamespaceLabels returns a namespace's labels.
	NamespaceLabels(ns string) labels.Set
	// PodsWithScoringAffinity counts pods with required affinity or
	// preferred (anti-)affinity terms, which score incoming pods.
	PodsWithScoringAffinity() int
	// RequiredAntiAffinityTerms lists the distinct required anti-affinity
	// terms of the pods in the cluster, each with the nodes (and how many
	// pods on each) that carry it.
	RequiredAntiAffinityTerms() []*TermNodes
	// VisitMatching calls f for every pod the term selects, with its node
	// (using a label index when the term allows).
	VisitMatching(t *AffinityTerm, f func(pi *PodInfo, ni *NodeInfo))
}

// TermNodes is an affinity term with the nodes whose pods carry it.
type TermNodes struct {
	Term  AffinityTerm
	Nodes map[string]int
}

// Plugin is anything the scheduler runs for a pod.
type Plugin interface {
	Name() string
}

// PreFilterPlugin computes per-pod state once before filtering; a non-nil
// status rejects the pod on every node.
type PreFilterPlugin interface {
	Plugin
	PreFilter(ctx context.Context, state *CycleState, pod *PodInfo, snap Snapshot) *Status
}

// FilterPlugin says whether the pod may run on a node.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status
}

// PreScorePlugin computes per-pod state once before scoring the feasible
// nodes.
type PreScorePlugin interface {
	Plugin
	PreScore(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo, snap Snapshot)
}

// ScorePlugin ranks a feasible node; NormalizeScore, when the plugin
// implements ScoreNormalizer, maps its raw scores to 0..MaxNodeScore.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) int64
}

// ScoreSkipper is a score plugin that can tell, after PreScore, that it
// would score every node the same for this pod (so it is not run).
type ScoreSkipper interface {
	SkipScore(state *CycleState, pod *PodInfo) bool
}

// ScoreNormalizer rescales a plugin's raw scores in place.
type ScoreNormalizer interface {
	NormalizeScore(state *CycleState, pod *PodInfo, scores []int64)
}

// DefaultNormalize maps scores linearly so the highest is MaxNodeScore;
// reverse makes the lowest the best.
func DefaultNormalize(scores []int64, reverse bool) {
	var max int64
	for _, s := range scores {
		if s > max {
			max = s
		}
	}
	if max == 0 {
		if reverse {
			for i := range scores {
				scores[i] = MaxNodeScore
			}
		}
		return
	}
	for i, s := range scores {
		s = MaxNodeScore * s / max
		if reverse {
			s = MaxNodeScore - s
		}
		scores[i] = s
	}
}

// ReservePlugin holds what a pod's cycle chose (volumes, for one) in the
// scheduler's memory as soon as a node is picked, so the next cycles do
// not choose it too; Unreserve undoes it when the pod is not bound after
// all. Both run in the scheduling loop or a bind worker, never blocking.
type ReservePlugin interface {
	Plugin
	Reserve(ctx context.Context, state *CycleState, pod *PodInfo, node string) *Status
	Unreserve(ctx context.Context, state *CycleState, pod *PodInfo, node string)
}

// PreBindPlugin runs in a bind worker before the pod's Binding is posted;
// it may write to the API and wait (bounded, honouring ctx). A non-nil
// status fails the binding and the pod is retried.
type PreBindPlugin interface {
	Plugin
	PreBind(ctx context.Context, state *CycleState, pod *PodInfo, node string) *Status
}
