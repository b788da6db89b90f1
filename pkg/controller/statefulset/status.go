package statefulset

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// status counts the set's pods as upstream does; the update becomes the
// current revision once every pod runs it and is Ready.
func status(set *appsv1.StatefulSet, r *run, pods []*corev1.Pod, collisions int32) appsv1.StatefulSetStatus {
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    r.current.Name,
		UpdateRevision:     r.update.Name,
		CollisionCount:     ptr.To(collisions),
		Conditions:         set.Status.Conditions,
	}
	for _, p := range pods {
		st.Replicas++
		if readySince(p) != nil {
			st.ReadyReplicas++
			if availableIn(p, set.Spec.MinReadySeconds, r.now) == 0 {
				st.AvailableReplicas++
			}
		}
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Labels[appsv1.StatefulSetRevisionLabel] == r.current.Name {
			st.CurrentReplicas++
		}
		if p.Labels[appsv1.StatefulSetRevisionLabel] == r.update.Name {
			st.UpdatedReplicas++
		}
	}
	n := int32(replicas(set))
	if st.UpdatedReplicas == n && st.ReadyReplicas == n && st.Replicas == n {
		st.CurrentRevision, st.CurrentReplicas = st.UpdateRevision, st.UpdatedReplicas
	}
	return st
}

func (c *Controller) updateStatus(ctx context.Context, set *appsv1.StatefulSet, r *run, pods []*corev1.Pod, collisions int32) error {
	st := status(set, r, pods, collisions)
	if apiequality.Semantic.DeepEqual(st, set.Status) {
		return nil
	}
	s := set.DeepCopy()
	s.Status = st
	_, err := c.client.AppsV1().StatefulSets(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // the next event brings a newer object
	}
	if err != nil {
		return fmt.Errorf("update status of statefulset %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// truncate deletes those of the set's revisions (revs, oldest first)
// beyond revisionHistoryLimit that no pod, nor the current or update
// revision, uses.
func (c *Controller) truncate(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revs []*appsv1.ControllerRevision, current, update *appsv1.ControllerRevision) error {
	live := map[string]bool{current.Name: true, update.Name: true}
	for _, p := range pods {
		live[p.Labels[appsv1.StatefulSetRevisionLabel]] = true
	}
	return c.history.Truncate(ctx, revs, live, ptr.Deref(set.Spec.RevisionHistoryLimit, 10))
}
