package deployment

import (
	"context"
	"math"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// fenceposts resolves maxSurge (rounded up) and maxUnavailable (rounded
// down) against the replica count; both zero would stall, so
// maxUnavailable becomes 1 then, as upstream.
func fenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil {
		return 0, 0
	}
	n := int(replicas(d))
	zero := intstr.FromInt32(0)
	ms, mu := ru.MaxSurge, ru.MaxUnavailable
	if ms == nil {
		ms = &zero
	}
	if mu == nil {
		mu = &zero
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(ms, n, true)
	if err != nil {
		s = 0
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(mu, n, false)
	if err != nil {
		u = 0
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u)
}

func maxSurge(d *appsv1.Deployment) int32 {
	s, _ := fenceposts(d)
	return s
}

// maxUnavailable is at most the replica count.
func maxUnavailable(d *appsv1.Deployment) int32 {
	_, u := fenceposts(d)
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || replicas(d) == 0 {
		return 0
	}
	return min(u, replicas(d))
}

// newReplicaCount is how many replicas the new ReplicaSet may have now.
func newReplicaCount(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return replicas(d)
	}
	current := sum(all, specReplicas)
	maxTotal := replicas(d) + maxSurge(d)
	if current >= maxTotal {
		return replicas(newRS)
	}
	up := min(maxTotal-current, replicas(d)-replicas(newRS))
	return replicas(newRS) + max(up, 0)
}

// rolloutRolling moves one step of a RollingUpdate.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, old, err := c.newAndOld(ctx, d, rss, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	// Scale up the new ReplicaSet first.
	if replicas(newRS) != replicas(d) {
		n := replicas(d)
		if replicas(newRS) < replicas(d) {
			n = newReplicaCount(d, all, newRS)
		}
		if n != replicas(newRS) {
			if newRS, err = c.scaleReplicaSet(ctx, newRS, n, d); err != nil {
				return err
			}
			all[len(all)-1] = newRS
			return c.syncRolloutStatus(ctx, d, all, newRS)
		}
	}
	// Then the old ones, as far as availability allows.
	scaled, old, err := c.scaleDownOld(ctx, d, all, old, newRS)
	if err != nil {
		return err
	}
	all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	if scaled {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if complete(d, c.calculateStatus(d, all, newRS)) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

// scaleDownOld scales old ReplicaSets down while enough pods stay
// available: first their unhealthy replicas, then the oldest ones. It
// returns whether anything was scaled and the old ReplicaSets as stored.
func (c *Controller) scaleDownOld(ctx context.Context, d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, []*appsv1.ReplicaSet, error) {
	old = append([]*appsv1.ReplicaSet(nil), old...)
	if sum(old, specReplicas) == 0 {
		return false, old, nil
	}
	minAvailable := replicas(d) - maxUnavailable(d)
	newUnavailable := replicas(newRS) - newRS.Status.AvailableReplicas
	maxScaledDown := sum(all, specReplicas) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, old, nil
	}
	byCreation(old)
	scaled := false
	// Unhealthy replicas of old ReplicaSets go first: they serve nothing.
	var total int32
	for i, rs := range old {
		if total >= maxScaledDown {
			break
		}
		unhealthy := replicas(rs) - rs.Status.AvailableReplicas
		if replicas(rs) == 0 || unhealthy <= 0 {
			continue
		}
		down := min(unhealthy, maxScaledDown-total)
		out, err := c.scaleReplicaSet(ctx, rs, replicas(rs)-down, d)
		if err != nil {
			return scaled, old, err
		}
		old[i], total, scaled = out, total+down, true
	}
	// Then available ones, oldest first, keeping minAvailable.
	all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	available := sum(all, availableReplicas)
	if available > minAvailable {
		budget := available - minAvailable
		for i, rs := range old {
			if budget <= 0 {
				break
			}
			if replicas(rs) == 0 {
				continue
			}
			down := min(replicas(rs), budget)
			out, err := c.scaleReplicaSet(ctx, rs, replicas(rs)-down, d)
			if err != nil {
				return scaled, old, err
			}
			old[i], budget, scaled = out, budget-down, true
		}
	}
	return scaled, old, nil
}

// rolloutRecreate scales every old ReplicaSet to zero, waits until their
// pods are gone, then scales the new one up.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, sel labels.Selector) error {
	newRS, old, err := c.newAndOld(ctx, d, rss, false)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	scaled := false
	for i, rs := range old {
		if replicas(rs) == 0 {
			continue
		}
		out, err := c.scaleReplicaSet(ctx, rs, 0, d)
		if err != nil {
			return err
		}
		old[i], scaled = out, true
	}
	if scaled {
		return c.syncRolloutStatus(ctx, d, append(append([]*appsv1.ReplicaSet(nil), old...), newRS), newRS)
	}
	running, err := c.oldPodsRunning(d, old, sel)
	if err != nil {
		return err
	}
	if running {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if newRS == nil {
		if newRS, old, err = c.newAndOld(ctx, d, rss, true); err != nil {
			return err
		}
	}
	if replicas(newRS) != replicas(d) {
		if newRS, err = c.scaleReplicaSet(ctx, newRS, replicas(d), d); err != nil {
			return err
		}
	}
	all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	if complete(d, c.calculateStatus(d, all, newRS)) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

// oldPodsRunning reports whether any pod of an old ReplicaSet may still
// run. Only pods those ReplicaSets control count, as upstream: a stray
// pod that matches the selector must not stall the rollout.
func (c *Controller) oldPodsRunning(d *appsv1.Deployment, old []*appsv1.ReplicaSet, sel labels.Selector) (bool, error) {
	if sum(old, statusReplicas) > 0 {
		return true, nil
	}
	pods, err := c.pods.Pods(d.Namespace).List(sel)
	if err != nil {
		return false, err
	}
	oldUIDs := map[types.UID]bool{}
	for _, rs := range old {
		oldUIDs[rs.UID] = true
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref == nil || !oldUIDs[ref.UID] {
			continue
		}
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true, nil
		}
	}
	return false, nil
}

// isScalingEvent reports whether d's replica count changed since its
// active ReplicaSets were last sized.
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) (bool, error) {
	newRS, old, err := c.newAndOld(ctx, d, rss, false)
	if err != nil {
		return false, err
	}
	for _, rs := range active(append(old, newRS)) {
		if desired, ok := annotatedInt(rs, desiredReplicasAnnotation); ok && desired != replicas(d) {
			return true, nil
		}
	}
	return false, nil
}

// scaleOnly resizes the ReplicaSets to a new replica count (paused or
// mid-rollout) without rolling, then reports status.
func (c *Controller) scaleOnly(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, old, err := c.newAndOld(ctx, d, rss, false)
	if err != nil {
		return err
	}
	if err := c.scale(ctx, d, newRS, old); err != nil {
		return err
	}
	// Read back what scale stored.
	if rss, err = c.claimedNow(ctx, d); err != nil {
		return err
	}
	newRS, old = findNew(d, rss), nil
	old = findOld(rss, newRS)
	if d.Spec.Paused {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncStatus(ctx, d, append(old, newRS), newRS)
}

// claimedNow lists the Deployment's ReplicaSets from the API (fresher
// than the cache right after scaling).
func (c *Controller) claimedNow(ctx context.Context, d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	l, err := c.client.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ReplicaSet
	for i := range l.Items {
		rs := &l.Items[i]
		if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	return out, nil
}

// scale distributes a changed replica count over the active ReplicaSets:
// all of it to the only active (or newest) one, else proportionally to
// their sizes within replicas+maxSurge, as upstream.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if rs := activeOrLatest(newRS, old); rs != nil {
		if replicas(rs) == replicas(d) {
			return nil
		}
		_, err := c.scaleReplicaSet(ctx, rs, replicas(d), d)
		return err
	}
	if saturated(d, newRS) {
		for _, rs := range active(old) {
			if _, err := c.scaleReplicaSet(ctx, rs, 0, d); err != nil {
				return err
			}
		}
		return nil
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		return nil
	}
	all := active(append(append([]*appsv1.ReplicaSet(nil), old...), newRS))
	current := sum(all, specReplicas)
	allowed := int32(0)
	if replicas(d) > 0 {
		allowed = replicas(d) + maxSurge(d)
	}
	toAdd := allowed - current
	// Larger first; among equals newer first when growing, older first
	// when shrinking.
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if replicas(a) != replicas(b) {
			return replicas(a) > replicas(b)
		}
		if toAdd > 0 {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
	sizes := make([]int32, len(all))
	var added int32
	if toAdd != 0 {
		for i, rs := range all {
			p := proportion(rs, d, toAdd, added)
			sizes[i] = replicas(rs) + p
			added += p
		}
	} else {
		for i, rs := range all {
			sizes[i] = replicas(rs)
		}
	}
	for i, rs := range all {
		n := sizes[i]
		if i == 0 && toAdd != 0 {
			// The leftover goes to the first (largest or smallest).
			n = max(n+toAdd-added, 0)
		}
		if _, err := c.scaleReplicaSet(ctx, rs, n, d); err != nil {
			return err
		}
	}
	return nil
}

// proportion is rs's share of toAdd (bounded by what is left of it).
func proportion(rs *appsv1.ReplicaSet, d *appsv1.Deployment, toAdd, added int32) int32 {
	if toAdd == 0 || toAdd == added || replicas(rs) == 0 {
		return 0
	}
	var fraction int32
	if replicas(d) == 0 {
		fraction = -replicas(rs)
	} else {
		deploymentReplicas := replicas(d) + maxSurge(d)
		annotated, ok := annotatedInt(rs, maxReplicasAnnotation)
		if !ok || annotated == 0 {
			annotated = d.Status.Replicas
		}
		if annotated == 0 {
			annotated = deploymentReplicas
		}
		size := float64(replicas(rs)*deploymentReplicas) / float64(annotated)
		fraction = int32(math.Round(size)) - replicas(rs)
	}
	left := toAdd - added
	if toAdd > 0 {
		return min(fraction, left)
	}
	return max(fraction, left)
}

// activeOrLatest returns the only active ReplicaSet, or with none active
// the new (or newest) one; nil when several are active.
func activeOrLatest(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(old) == 0 {
		return nil
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	act := active(all)
	switch len(act) {
	case 0:
		if newRS != nil {
			return newRS
		}
		sorted := append([]*appsv1.ReplicaSet(nil), old...)
		byCreation(sorted)
		return sorted[len(sorted)-1]
	case 1:
		return act[0]
	}
	return nil
}

// saturated reports whether the new ReplicaSet has all replicas, sized
// for the current count, available.
func saturated(d *appsv1.Deployment, newRS *appsv1.ReplicaSet) bool {
	if newRS == nil {
		return false
	}
	desired, ok := annotatedInt(newRS, desiredReplicasAnnotation)
	return ok && replicas(newRS) == replicas(d) && desired == replicas(d) && newRS.Status.AvailableReplicas == replicas(d)
}
