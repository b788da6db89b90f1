package kubelet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The reason and message of a pod failed for its activeDeadlineSeconds, as
// upstream's kubelet sets them.
const (
	reasonDeadlineExceeded  = "DeadlineExceeded"
	messageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
)

// pastActiveDeadline reports whether pod has been active (since its
// startTime) for its activeDeadlineSeconds or longer; the deadline is read
// at every sync, so an update to it takes effect on a running pod.
func (k *Kubelet) pastActiveDeadline(pod *corev1.Pod) bool {
	if pod.Spec.ActiveDeadlineSeconds == nil {
		return false
	}
	var start time.Time
	if pod.Status.StartTime != nil {
		start = pod.Status.StartTime.Time
	} else {
		k.mu.Lock()
		start = k.startTimes[pod.UID]
		k.mu.Unlock()
	}
	if start.IsZero() {
		return false
	}
	return k.cfg.Clock.Since(start) >= time.Duration(*pod.Spec.ActiveDeadlineSeconds)*time.Second
}

// failForDeadline kills the pod's containers (their grace period as for a
// deletion), stops its sandbox, and reports it Failed with reason
// DeadlineExceeded; its containers show as terminated, not restarting.
func (k *Kubelet) failForDeadline(ctx context.Context, pod *corev1.Pod) error {
	k.recorder.Eventf(pod, corev1.EventTypeNormal, reasonDeadlineExceeded, messageDeadlineExceeded)
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	st, err := k.runtimeStateOf(ctx, pod.UID)
	if err != nil {
		return err
	}
	if err := k.stopPod(ctx, pod, st, grace); err != nil {
		return fmt.Errorf("kill pod past its deadline: %w", err)
	}
	if st, err = k.runtimeStateOf(ctx, pod.UID); err != nil {
		return err
	}
	// Nothing restarts in a failed pod: compute the statuses as for a
	// pod that never restarts.
	view := pod.DeepCopy()
	view.Spec.RestartPolicy = corev1.RestartPolicyNever
	status := k.podStatus(view, st)
	status.Phase = corev1.PodFailed
	status.Reason, status.Message = reasonDeadlineExceeded, messageDeadlineExceeded
	status.Conditions = podConditions(pod, status, false, metav1.NewTime(k.cfg.Clock.Now().Truncate(time.Second)))
	for i := range status.Conditions {
		if kubeletConditions[status.Conditions[i].Type] {
			status.Conditions[i].ObservedGeneration = pod.Generation
		}
	}
	p := pod.DeepCopy()
	p.Status = status
	_, err = k.cfg.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
