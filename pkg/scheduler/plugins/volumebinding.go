package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// VolumeBinding places pods with PersistentVolumeClaims, as upstream's
// plugin of that name does. Bound claims keep the pod on the nodes their
// volumes' node affinity allows. Unbound claims of a WaitForFirstConsumer
// class fit a node that has an Available matching volume (the smallest is
// chosen) or whose labels the class's provisioner may provision for.
// Reserve holds the chosen volumes in memory so parallel binding cycles do
// not take the same one; PreBind, in a bind worker, writes the choice
// (claimRef on a static volume, volume.kubernetes.io/selected-node on a
// claim to provision) and waits until the PV controller and provisioner
// have bound every claim.
type VolumeBinding struct {
	PVCs    corelisters.PersistentVolumeClaimLister
	PVs     corelisters.PersistentVolumeLister
	Classes storagelisters.StorageClassLister
	Client  kubernetes.Interface
	Clock   clock.Clock
	// BindTimeout bounds PreBind's wait (default 10 minutes); PollInterval
	// is how often it looks at the claims in the informer cache (default
	// 20ms: a look costs a map read, and upstream's 1s is most of a
	// provisioned pod's start-up).
	BindTimeout, PollInterval time.Duration

	mu sync.Mutex
	// assumed maps a volume name to the claim ("ns/name") a reserved
	// cycle chose it for, until that cycle ends.
	assumed map[string]string
}

// Upstream's reason texts.
const (
	ReasonVolumeNodeAffinity = "node(s) had volume node affinity conflict"
	ReasonBindConflict       = "node(s) didn't find available persistent volumes to bind"
	ReasonUnboundImmediate   = "pod has unbound immediate PersistentVolumeClaims"
)

// Annotations the binding protocol uses (upstream's names).
const (
	noProvisioner = "kubernetes.io/no-provisioner"
)

// unboundClaim is a WaitForFirstConsumer claim the pod waits on.
type unboundClaim struct {
	claim *corev1.PersistentVolumeClaim
	class *storagev1.StorageClass
}

// nodeVolumes is what Filter decided for one node: a static volume per
// claim, or nil where the claim is to be provisioned.
type nodeVolumes struct {
	static    map[string]*corev1.PersistentVolume // claim key -> volume
	provision []*corev1.PersistentVolumeClaim
}

// volumeState is the cycle's state: the bound claims' node selectors, the
// unbound claims, the candidate volumes, and per-node decisions. Filter
// runs for one node at a time (findNode's loop), so byNode needs no lock.
type volumeState struct {
	selectors []*nodeaffinity.NodeSelector
	unbound   []unboundClaim
	volumes   []*corev1.PersistentVolume
	// excluded are volumes other cycles have reserved.
	excluded map[string]*corev1.PersistentVolume
	byNode   map[string]*nodeVolumes
	// reserved is what Reserve took, for PreBind and Unreserve.
	reserved *nodeVolumes
}

func (*VolumeBinding) Name() string { return "VolumeBinding" }

func claimKey(c *corev1.PersistentVolumeClaim) string { return c.Namespace + "/" + c.Name }

func (v *VolumeBinding) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ framework.Snapshot) *framework.Status {
	st := &volumeState{byNode: map[string]*nodeVolumes{}}
	for _, vol := range pod.Pod.Spec.Volumes {
		if vol.PersistentVolumeClaim == nil {
			continue
		}
		name := vol.PersistentVolumeClaim.ClaimName
		pvc, err := v.PVCs.PersistentVolumeClaims(pod.Pod.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("persistentvolumeclaim %q not found", name))
		}
		if err != nil {
			return framework.NewStatus(framework.Error, err.Error())
		}
		if pvc.DeletionTimestamp != nil {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("persistentvolumeclaim %q is being deleted", name))
		}
		if pvc.Spec.VolumeName == "" {
			class := v.delayedClass(pvc)
			if class == nil {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonUnboundImmediate)
			}
			st.unbound = append(st.unbound, unboundClaim{claim: pvc, class: class})
			continue
		}
		pv, err := v.PVs.Get(pvc.Spec.VolumeName)
		if err != nil {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, "pvc(s) bound to non-existent pv(s)")
		}
		if na := pv.Spec.NodeAffinity; na != nil && na.Required != nil {
			sel, err := nodeaffinity.NewNodeSelector(na.Required)
			if err != nil {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
			}
			st.selectors = append(st.selectors, sel)
		}
	}
	if len(st.unbound) > 0 {
		pvs, err := v.PVs.List(labels.Everything())
		if err != nil {
			return framework.NewStatus(framework.Error, err.Error())
		}
		st.volumes = pvs
		st.excluded = map[string]*corev1.PersistentVolume{}
		v.mu.Lock()
		for _, pv := range pvs {
			if owner, ok := v.assumed[pv.Name]; ok {
				if pv.Spec.ClaimRef != nil {
					// The volume's claimRef is written: the cache
					// has caught up, the reservation is not needed.
					delete(v.assumed, pv.Name)
				}
				if !ownedByPod(owner, st.unbound) {
					st.excluded[pv.Name] = pv
				}
			}
		}
		v.mu.Unlock()
	}
	state.Write(framework.VolumeBindingState, st)
	return nil
}

func ownedByPod(key string, claims []unboundClaim) bool {
	for _, c := range claims {
		if claimKey(c.claim) == key {
			return true
		}
	}
	return false
}

// delayedClass returns the claim's class if it waits for the first
// consumer; nil means the claim binds immediately (without the
// scheduler), as does a claim whose class does not exist.
func (v *VolumeBinding) delayedClass(pvc *corev1.PersistentVolumeClaim) *storagev1.StorageClass {
	name := volumehelpers.GetPersistentVolumeClaimClass(pvc)
	if name == "" || v.Classes == nil {
		return nil
	}
	class, err := v.Classes.Get(name)
	if err != nil || class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		return nil
	}
	return class
}

func (v *VolumeBinding) Filter(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	st, _ := state.Read(framework.VolumeBindingState).(*volumeState)
	if st == nil {
		return nil
	}
	for _, sel := range st.selectors {
		if !sel.Match(ni.Node) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonVolumeNodeAffinity)
		}
	}
	if len(st.unbound) == 0 {
		return nil
	}
	decision := &nodeVolumes{static: map[string]*corev1.PersistentVolume{}}
	chosen := make(map[string]*corev1.PersistentVolume, len(st.excluded)+len(st.unbound))
	for k, pv := range st.excluded {
		chosen[k] = pv
	}
	for _, u := range st.unbound {
		if sel, ok := u.claim.Annotations[volumehelpers.AnnSelectedNode]; ok && sel != ni.Node.Name {
			// Provisioning for another node has begun.
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonBindConflict)
		}
		pv, err := volumehelpers.FindMatchingVolume(u.claim, st.volumes, ni.Node, chosen, false, true)
		if err != nil {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
		}
		if pv != nil {
			chosen[pv.Name] = pv
			decision.static[claimKey(u.claim)] = pv
			continue
		}
		if u.class.Provisioner == noProvisioner || !topologyAllows(u.class.AllowedTopologies, ni.Node.Labels) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonBindConflict)
		}
		decision.provision = append(decision.provision, u.claim)
	}
	st.byNode[ni.Node.Name] = decision
	return nil
}

// topologyAllows reports whether node labels satisfy a class's
// allowedTopologies: any term, every expression of it (none: anywhere).
func topologyAllows(terms []corev1.TopologySelectorTerm, nodeLabels map[string]string) bool {
	if len(terms) == 0 {
		return true
	}
	for _, t := range terms {
		ok := true
		for _, e := range t.MatchLabelExpressions {
			val, has := nodeLabels[e.Key]
			if !has || !contains(e.Values, val) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Reserve holds the static volumes Filter chose for node.
func (v *VolumeBinding) Reserve(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node string) *framework.Status {
	st, _ := state.Read(framework.VolumeBindingState).(*volumeState)
	if st == nil || len(st.unbound) == 0 {
		return nil
	}
	d := st.byNode[node]
	if d == nil {
		return framework.NewStatus(framework.Error, "volume binding: no decision for node "+node)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.assumed == nil {
		v.assumed = map[string]string{}
	}
	for key, pv := range d.static {
		if owner, ok := v.assumed[pv.Name]; ok && owner != key {
			return framework.NewStatus(framework.Unschedulable, fmt.Sprintf("persistentvolume %q is reserved for claim %s", pv.Name, owner))
		}
	}
	for key, pv := range d.static {
		v.assumed[pv.Name] = key
	}
	st.reserved = d
	return nil
}

// Unreserve releases what Reserve held.
func (v *VolumeBinding) Unreserve(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, _ string) {
	st, _ := state.Read(framework.VolumeBindingState).(*volumeState)
	if st == nil || st.reserved == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for key, pv := range st.reserved.static {
		if v.assumed[pv.Name] == key {
			delete(v.assumed, pv.Name)
		}
	}
	st.reserved = nil
}

// PreBind writes the reserved decisions and waits until every claim of
// the pod is bound.
func (v *VolumeBinding) PreBind(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, node string) *framework.Status {
	st, _ := state.Read(framework.VolumeBindingState).(*volumeState)
	if st == nil || st.reserved == nil {
		return nil
	}
	for _, u := range st.unbound {
		pv := st.reserved.static[claimKey(u.claim)]
		if pv == nil {
			continue
		}
		bound, dirty, err := volumehelpers.GetBindVolumeToClaim(pv, u.claim)
		if err != nil {
			return framework.NewStatus(framework.Error, err.Error())
		}
		if !dirty {
			continue
		}
		if _, err := v.Client.CoreV1().PersistentVolumes().Update(ctx, bound, metav1.UpdateOptions{}); err != nil {
			return framework.NewStatus(framework.Error, fmt.Sprintf("bind persistentvolume %s to claim %s: %v", pv.Name, claimKey(u.claim), err))
		}
	}
	for _, c := range st.reserved.provision {
		if c.Annotations[volumehelpers.AnnSelectedNode] == node {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"annotations":     map[string]string{volumehelpers.AnnSelectedNode: node},
			"resourceVersion": c.ResourceVersion,
		}})
		if _, err := v.Client.CoreV1().PersistentVolumeClaims(c.Namespace).Patch(ctx, c.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return framework.NewStatus(framework.Error, fmt.Sprintf("select node %s for claim %s: %v", node, claimKey(c), err))
		}
	}
	return v.waitBound(ctx, st.unbound)
}

// waitBound polls the claim cache until every claim is Bound, the claim
// goes away, or BindTimeout passes.
func (v *VolumeBinding) waitBound(ctx context.Context, claims []unboundClaim) *framework.Status {
	clk := v.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	timeout, interval := v.BindTimeout, v.PollInterval
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	if interval == 0 {
		interval = 20 * time.Millisecond
	}
	deadline := clk.Now().Add(timeout)
	for {
		pending := ""
		for _, u := range claims {
			c, err := v.PVCs.PersistentVolumeClaims(u.claim.Namespace).Get(u.claim.Name)
			if err != nil || c.UID != u.claim.UID || c.DeletionTimestamp != nil {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("persistentvolumeclaim %q was deleted while binding", u.claim.Name))
			}
			if c.Spec.VolumeName == "" || c.Status.Phase != corev1.ClaimBound {
				pending = u.claim.Name
				break
			}
		}
		if pending == "" {
			return nil
		}
		if !clk.Now().Before(deadline) {
			return framework.NewStatus(framework.Error, fmt.Sprintf("binding volumes: timed out waiting for persistentvolumeclaim %q to be bound", pending))
		}
		select {
		case <-ctx.Done():
			return framework.NewStatus(framework.Error, "binding volumes: "+ctx.Err().Error())
		case <-clk.After(interval):
		}
	}
}

// ImageLocality prefers nodes that already have the pod's images, scaled
// by how many nodes have them (so one node does not draw every pod).
type ImageLocality struct{}

// Upstream's thresholds: below 23 MB of images scores 0, 1000 MB per
// container scores full.
const (
	imageMinThreshold = 23 << 20
	imageMaxThreshold = 1000 << 20
)

type imageState struct {
	total  int
	spread map[string]int
}

func (ImageLocality) Name() string { return "ImageLocality" }

func (ImageLocality) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo, snap framework.Snapshot) {
	s := &imageState{spread: map[string]int{}}
	nodes := snap.Nodes()
	s.total = len(nodes)
	for _, c := range pod.Pod.Spec.Containers {
		img := framework.NormalizeImage(c.Image)
		if _, done := s.spread[img]; done {
			continue
		}
		n := 0
		for _, ni := range nodes {
			if _, ok := ni.ImageSizes[img]; ok {
				n++
			}
		}
		s.spread[img] = n
	}
	state.Write(framework.ImageLocalityState, s)
}

func (ImageLocality) SkipScore(state *framework.CycleState, _ *framework.PodInfo) bool {
	s, _ := state.Read(framework.ImageLocalityState).(*imageState)
	if s == nil {
		return true
	}
	for _, n := range s.spread {
		if n > 0 {
			return false
		}
	}
	return true
}

func (ImageLocality) Score(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, ni *framework.NodeInfo) int64 {
	s, _ := state.Read(framework.ImageLocalityState).(*imageState)
	if s == nil || s.total == 0 || len(ni.ImageSizes) == 0 {
		return 0
	}
	var sum int64
	for _, c := range pod.Pod.Spec.Containers {
		img := framework.NormalizeImage(c.Image)
		if size, ok := ni.ImageSizes[img]; ok {
			sum += int64(float64(size) * float64(s.spread[img]) / float64(s.total))
		}
	}
	maxT := int64(imageMaxThreshold) * int64(len(pod.Pod.Spec.Containers))
	switch {
	case sum < imageMinThreshold:
		return 0
	case sum > maxT:
		return framework.MaxNodeScore
	}
	return framework.MaxNodeScore * (sum - imageMinThreshold) / (maxT - imageMinThreshold)
}
