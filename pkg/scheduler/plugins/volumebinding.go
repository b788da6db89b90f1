package plugins

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff/skiff/pkg/scheduler/framework"
)

// VolumeBinding keeps pods whose claims are bound to volumes with node
// affinity (local persistent volumes) on the nodes those volumes allow.
type VolumeBinding struct {
	PVCs corelisters.PersistentVolumeClaimLister
	PVs  corelisters.PersistentVolumeLister
}

// ReasonVolumeNodeAffinity is upstream's reason text.
const ReasonVolumeNodeAffinity = "node(s) had volume node affinity conflict"

func (VolumeBinding) Name() string { return "VolumeBinding" }

func (v VolumeBinding) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ framework.Snapshot) *framework.Status {
	var selectors []*nodeaffinity.NodeSelector
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
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, "pod has unbound immediate PersistentVolumeClaims")
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
			selectors = append(selectors, sel)
		}
	}
	state.Write(framework.VolumeBindingState, selectors)
	return nil
}

func (VolumeBinding) Filter(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	for _, sel := range state.Read(framework.VolumeBindingState).([]*nodeaffinity.NodeSelector) {
		if !sel.Match(ni.Node) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonVolumeNodeAffinity)
		}
	}
	return nil
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
