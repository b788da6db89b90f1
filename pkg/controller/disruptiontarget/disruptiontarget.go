// Package disruptiontarget deletes a pod on the system's initiative as
// upstream's controllers do: it first gets the DisruptionTarget condition
// (reason and message saying who and why), so Jobs' pod failure policies
// and users can tell a disruption from a failure.
package disruptiontarget

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Delete marks p a disruption target (mark) and deletes it with opts
// (the pod's UID as precondition). A pod already gone is no error.
func Delete(ctx context.Context, client kubernetes.Interface, p *corev1.Pod, reason, message string, fail bool, now metav1.Time, opts metav1.DeleteOptions) error {
	if err := mark(ctx, client, p, reason, message, fail, now); err != nil {
		return err
	}
	opts.Preconditions = &metav1.Preconditions{UID: &p.UID}
	if err := client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, opts); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// mark gives p the DisruptionTarget condition (reason, message); fail
// also sets a pod that has not finished Failed, as the pod GC does for
// pods no kubelet will report on. A pod already gone is no error.
func mark(ctx context.Context, client kubernetes.Interface, p *corev1.Pod, reason, message string, fail bool, now metav1.Time) error {
	upd := p.DeepCopy()
	setCondition(&upd.Status, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: reason, Message: message, LastTransitionTime: now})
	if fail && upd.Status.Phase != corev1.PodSucceeded && upd.Status.Phase != corev1.PodFailed {
		upd.Status.Phase = corev1.PodFailed
	}
	if _, err := client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("mark pod %s/%s a disruption target: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// setCondition replaces or appends cond in s, keeping the transition
// time of an unchanged status.
func setCondition(s *corev1.PodStatus, cond corev1.PodCondition) {
	for i := range s.Conditions {
		if s.Conditions[i].Type == cond.Type {
			if s.Conditions[i].Status == cond.Status {
				cond.LastTransitionTime = s.Conditions[i].LastTransitionTime
			}
			s.Conditions[i] = cond
			return
		}
	}
	s.Conditions = append(s.Conditions, cond)
}
