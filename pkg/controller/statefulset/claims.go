package statefulset

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// ensureClaims creates the pod's missing claims and gives each the owners
// its retention policy asks for: the set when claims go with the set
// (whenDeleted: Delete), the pod when the pod is being scaled away
// (condemned, whenScaled: Delete), so the garbage collector removes them
// after their owner.
func (r *run) ensureClaims(ctx context.Context, p *corev1.Pod, condemned bool) error {
	for i := range r.set.Spec.VolumeClaimTemplates {
		t := &r.set.Spec.VolumeClaimTemplates[i]
		name := claimName(t, p.Name)
		existing, err := r.c.claims.PersistentVolumeClaims(r.set.Namespace).Get(name)
		switch {
		case apierrors.IsNotFound(err):
			if err := r.createClaim(ctx, t, name, p, condemned); err != nil {
				return err
			}
		case err != nil:
			return err
		case existing.DeletionTimestamp != nil:
			return fmt.Errorf("claim %s/%s for pod %s is being deleted", existing.Namespace, name, p.Name)
		default:
			refs := r.claimOwners(existing.OwnerReferences, p, condemned)
			if apiequality.Semantic.DeepEqual(refs, existing.OwnerReferences) {
				continue
			}
			c := existing.DeepCopy()
			c.OwnerReferences = refs
			if _, err := r.c.client.CoreV1().PersistentVolumeClaims(c.Namespace).Update(ctx, c, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("set owners of claim %s/%s: %w", c.Namespace, c.Name, err)
			}
		}
	}
	return nil
}

func (r *run) createClaim(ctx context.Context, t *corev1.PersistentVolumeClaim, name string, p *corev1.Pod, condemned bool) error {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: r.set.Namespace, Labels: map[string]string{}, Annotations: t.Annotations,
			OwnerReferences: r.claimOwners(nil, p, condemned),
		},
		Spec: *t.Spec.DeepCopy(),
	}
	for k, v := range t.Labels {
		c.Labels[k] = v
	}
	if r.set.Spec.Selector != nil {
		for k, v := range r.set.Spec.Selector.MatchLabels {
			c.Labels[k] = v
		}
	}
	_, err := r.c.client.CoreV1().PersistentVolumeClaims(c.Namespace).Create(ctx, c, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		r.c.recorder.Eventf(r.set, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v", name, p.Name, r.set.Name, err)
		return fmt.Errorf("create claim %s/%s: %w", c.Namespace, name, err)
	}
	r.c.recorder.Eventf(r.set, corev1.EventTypeNormal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success", name, p.Name, r.set.Name)
	return nil
}

// claimOwners is refs with the set's and pod's references set as the
// retention policy asks, other owners kept. A pod not yet created (no
// UID) is never an owner.
func (r *run) claimOwners(refs []metav1.OwnerReference, p *corev1.Pod, condemned bool) []metav1.OwnerReference {
	policy := r.set.Spec.PersistentVolumeClaimRetentionPolicy
	whenDeleted, whenScaled := appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	if policy != nil {
		whenDeleted, whenScaled = policy.WhenDeleted, policy.WhenScaled
	}
	out := slices.DeleteFunc(slices.Clone(refs), func(ref metav1.OwnerReference) bool {
		return ref.UID == r.set.UID || (ref.Kind == "Pod" && ref.Name == p.Name)
	})
	if whenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		out = append(out, owner(r.set.Name, r.set.UID, gvk.GroupVersion().String(), gvk.Kind))
	}
	if condemned && whenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType && p.UID != "" {
		out = append(out, owner(p.Name, p.UID, "v1", "Pod"))
	}
	return out
}

func owner(name string, uid types.UID, apiVersion, kind string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, BlockOwnerDeletion: ptr.To(true)}
}
