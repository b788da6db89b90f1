// Package cache is the scheduler's view of the cluster: nodes with the pods
// bound or assumed to them. Assuming a pod accounts for it on its node the
// moment the scheduler decides, before the binding reaches the API server,
// so a burst of decisions never over-commits a node; the informer's event
// for the bound pod confirms it, a failed binding forgets it.
package cache

import (
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// Cache holds node infos; it is safe for concurrent use. The scheduling
// cycle reads it under View (holding the lock: informer updates wait for
// the cycle, which takes well under a millisecond), so it needs no copy of
// the cluster.
type Cache struct {
	mu    sync.RWMutex
	nodes map[string]*framework.NodeInfo
	// order lists node names with a Node object, sorted, for a stable
	// iteration order; rebuilt when nodes come and go.
	order    []*framework.NodeInfo
	dirty    bool
	pods     map[types.UID]*podState
	nsLabels map[string]labels.Set
	// withScoring counts pods with required affinity or preferred terms.
	withScoring int
	// antiTerms indexes required anti-affinity terms by Key; termList
	// lists them (rebuilt when terms come and go).
	antiTerms  map[string]*framework.TermNodes
	termList   []*framework.TermNodes
	termsDirty bool
	// byLabel indexes pods by "namespace/key=value" of each label.
	byLabel map[string]map[types.UID]*podState
}

type podState struct {
	info    *framework.PodInfo
	node    string
	assumed bool
}

// New returns an empty Cache.
func New() *Cache {
	return &Cache{nodes: map[string]*framework.NodeInfo{}, pods: map[types.UID]*podState{}, nsLabels: map[string]labels.Set{},
		antiTerms: map[string]*framework.TermNodes{}, byLabel: map[string]map[types.UID]*podState{}}
}

// AddOrUpdateNode records a node's latest object.
func (c *Cache) AddOrUpdateNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[node.Name]
	if !ok {
		ni = framework.NewNodeInfo(nil)
		c.nodes[node.Name] = ni
	}
	if ni.Node == nil {
		c.dirty = true
	}
	ni.SetNode(node)
}

// RemoveNode forgets a node (its pods stay accounted until they go).
func (c *Cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[name]
	if !ok {
		return
	}
	ni.SetNode(nil)
	if len(ni.Pods) == 0 {
		delete(c.nodes, name)
	}
	c.dirty = true
}

// SetNamespace records a namespace's labels (for namespaceSelector terms).
func (c *Cache) SetNamespace(ns *corev1.Namespace, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if deleted {
		delete(c.nsLabels, ns.Name)
		return
	}
	c.nsLabels[ns.Name] = labels.Set(ns.Labels)
}

// AddOrUpdatePod records a pod bound to a node (it confirms an assumed
// one); pods that finished no longer count.
func (c *Cache) AddOrUpdatePod(pod *corev1.Pod) error {
	if pod.Spec.NodeName == "" {
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		c.RemovePod(pod.UID)
		return nil
	}
	pi, err := framework.NewPodInfo(pod)
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(pod.UID)
	c.addLocked(pi, pod.Spec.NodeName, false)
	return nil
}

// RemovePod forgets a pod.
func (c *Cache) RemovePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
}

// Assume accounts for pi on node before its binding is confirmed.
func (c *Cache) Assume(pi *framework.PodInfo, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(pi.Pod.UID)
	c.addLocked(pi, node, true)
}

// Forget undoes Assume after a failed binding (a confirmed pod stays).
func (c *Cache) Forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[uid]; ok && ps.assumed {
		c.removeLocked(uid)
	}
}

// IsAssumedOrBound reports whether the cache already places the pod.
func (c *Cache) IsAssumedOrBound(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.pods[uid]
	return ok
}

func (c *Cache) addLocked(pi *framework.PodInfo, node string, assumed bool) {
	ni, ok := c.nodes[node]
	if !ok {
		ni = framework.NewNodeInfo(nil)
		c.nodes[node] = ni
	}
	ni.AddPod(pi)
	ps := &podState{info: pi, node: node, assumed: assumed}
	c.pods[pi.Pod.UID] = ps
	c.index(ps, 1)
}

func (c *Cache) removeLocked(uid types.UID) {
	ps, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	c.index(ps, -1)
	if ni, ok := c.nodes[ps.node]; ok {
		ni.RemovePod(uid)
		if ni.Node == nil && len(ni.Pods) == 0 {
			delete(c.nodes, ps.node)
		}
	}
}

// index adds (d=1) or removes (d=-1) a pod from the counters and indexes.
func (c *Cache) index(ps *podState, d int) {
	pi := ps.info
	if len(pi.RequiredAffinity)+len(pi.PreferredAffinity)+len(pi.PreferredAntiAffinity) > 0 {
		c.withScoring += d
	}
	for i := range pi.RequiredAntiAffinity {
		t := &pi.RequiredAntiAffinity[i]
		key := t.Key()
		e := c.antiTerms[key]
		if e == nil {
			if d < 0 {
				continue
			}
			e = &framework.TermNodes{Term: *t, Nodes: map[string]int{}}
			c.antiTerms[key] = e
			c.termsDirty = true
		}
		if e.Nodes[ps.node] += d; e.Nodes[ps.node] <= 0 {
			delete(e.Nodes, ps.node)
		}
		if len(e.Nodes) == 0 {
			delete(c.antiTerms, key)
			c.termsDirty = true
		}
	}
	for k, v := range pi.Pod.Labels {
		key := pi.Pod.Namespace + "/" + k + "=" + v
		m := c.byLabel[key]
		if d > 0 {
			if m == nil {
				m = map[types.UID]*podState{}
				c.byLabel[key] = m
			}
			m[pi.Pod.UID] = ps
		} else if m != nil {
			delete(m, pi.Pod.UID)
			if len(m) == 0 {
				delete(c.byLabel, key)
			}
		}
	}
}

// View runs f with a consistent, read-only view of the cluster. f must not
// keep the snapshot or call back into the cache.
func (c *Cache) View(f func(framework.Snapshot)) {
	c.mu.Lock()
	if c.dirty {
		c.order = c.order[:0]
		for _, ni := range c.nodes {
			if ni.Node != nil {
				c.order = append(c.order, ni)
			}
		}
		sort.Slice(c.order, func(i, j int) bool { return c.order[i].Node.Name < c.order[j].Node.Name })
		c.dirty = false
	}
	if c.termsDirty {
		c.termList = c.termList[:0]
		for _, e := range c.antiTerms {
			c.termList = append(c.termList, e)
		}
		c.termsDirty = false
	}
	defer c.mu.Unlock()
	f(snapshot{c})
}

// NodeCount is the number of nodes with a Node object.
func (c *Cache) NodeCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, ni := range c.nodes {
		if ni.Node != nil {
			n++
		}
	}
	return n
}

type snapshot struct{ c *Cache }

func (s snapshot) Nodes() []*framework.NodeInfo { return s.c.order }

func (s snapshot) Get(name string) *framework.NodeInfo {
	if ni := s.c.nodes[name]; ni != nil && ni.Node != nil {
		return ni
	}
	return nil
}

func (s snapshot) NamespaceLabels(ns string) labels.Set { return s.c.nsLabels[ns] }

func (s snapshot) PodsWithScoringAffinity() int { return s.c.withScoring }

func (s snapshot) RequiredAntiAffinityTerms() []*framework.TermNodes { return s.c.termList }

// VisitMatching uses the label index when the term names its namespaces and
// has an equality (or "in") requirement; otherwise it scans every pod.
func (s snapshot) VisitMatching(t *framework.AffinityTerm, f func(*framework.PodInfo, *framework.NodeInfo)) {
	c := s.c
	visit := func(ps *podState) {
		ni := c.nodes[ps.node]
		if ni == nil || ni.Node == nil || ps.info.Pod.DeletionTimestamp != nil {
			return
		}
		if t.Matches(ps.info.Pod, c.nsLabels[ps.info.Pod.Namespace]) {
			f(ps.info, ni)
		}
	}
	if t.NamespaceSelector == nil {
		if reqs, ok := t.Selector.Requirements(); ok {
			for _, r := range reqs {
				if op := r.Operator(); op != selection.Equals && op != selection.DoubleEquals && op != selection.In {
					continue
				}
				for ns := range t.Namespaces {
					for v := range r.Values() {
						for _, ps := range c.byLabel[ns+"/"+r.Key()+"="+v] {
							visit(ps)
						}
					}
				}
				return
			}
		}
	}
	for _, ps := range c.pods {
		visit(ps)
	}
}
