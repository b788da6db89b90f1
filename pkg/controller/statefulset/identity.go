package statefulset

import (
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// startOrdinal is the set's first ordinal (spec.ordinals.start, or 0).
func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func replicas(set *appsv1.StatefulSet) int { return int(ptr.Deref(set.Spec.Replicas, 1)) }

// podName is the name, and hostname, of the set's pod with ordinal.
func podName(set *appsv1.StatefulSet, ordinal int) string {
	return set.Name + "-" + strconv.Itoa(ordinal)
}

// ordinalOf is the ordinal in a pod's name, if it is one of set's names.
func ordinalOf(set *appsv1.StatefulSet, p *corev1.Pod) (int, bool) {
	rest, ok := strings.CutPrefix(p.Name, set.Name+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// claimName is the claim a template makes for the pod with podName.
func claimName(template *corev1.PersistentVolumeClaim, podName string) string {
	return template.Name + "-" + podName
}

// newPod is the set's pod with ordinal, from template (the pod template
// of revision): its name is its hostname, its subdomain the governing
// service, its claim templates replace template volumes of their names.
func newPod(set *appsv1.StatefulSet, template *corev1.PodTemplateSpec, revision string, ordinal int) *corev1.Pod {
	name := podName(set, ordinal)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       set.Namespace,
			Labels:          map[string]string{},
			Annotations:     template.Annotations,
			Finalizers:      template.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, gvk)},
		},
		Spec: *template.Spec.DeepCopy(),
	}
	for k, v := range template.Labels {
		p.Labels[k] = v
	}
	p.Labels[appsv1.StatefulSetPodNameLabel] = name
	p.Labels[appsv1.PodIndexLabel] = strconv.Itoa(ordinal)
	p.Labels[appsv1.StatefulSetRevisionLabel] = revision
	p.Spec.Hostname = name
	p.Spec.Subdomain = set.Spec.ServiceName
	for i := range set.Spec.VolumeClaimTemplates {
		t := &set.Spec.VolumeClaimTemplates[i]
		vol := corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(t, name)},
		}}
		replaced := false
		for j := range p.Spec.Volumes {
			if p.Spec.Volumes[j].Name == t.Name {
				p.Spec.Volumes[j], replaced = vol, true
			}
		}
		if !replaced {
			p.Spec.Volumes = append(p.Spec.Volumes, vol)
		}
	}
	return p
}

// readySince is when the pod became Ready, nil if it is not running and
// Ready.
func readySince(p *corev1.Pod) *time.Time {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return nil
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			t := c.LastTransitionTime.Time
			return &t
		}
	}
	return nil
}

// availableIn is how long until the pod is available (Ready for
// minReadySeconds): 0 once it is, a negative duration while it is not
// Ready at all.
func availableIn(p *corev1.Pod, minReadySeconds int32, now time.Time) time.Duration {
	since := readySince(p)
	if since == nil {
		return -1
	}
	return max(since.Add(time.Duration(minReadySeconds)*time.Second).Sub(now), 0)
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}
