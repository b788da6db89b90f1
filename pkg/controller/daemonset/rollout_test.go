package daemonset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func pod(name, node string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func strategy(maxUnavailable, maxSurge intstr.IntOrString) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
		Type:          appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(maxUnavailable), MaxSurge: ptr.To(maxSurge)},
	}}}
}

// With maxSurge, new pods start beside Ready outdated ones on up to
// maxSurge nodes (counting nodes already surging); outdated pods that
// are not Ready are just deleted; nothing is deleted first.
func TestRollOutSurge(t *testing.T) {
	ds := strategy(intstr.FromInt32(0), intstr.FromString("50%"))
	if !surges(ds) || surges(strategy(intstr.FromInt32(1), intstr.FromInt32(0))) {
		t.Fatal("surges wrong")
	}
	outdated := []*corev1.Pod{pod("a", "n1", true), pod("b", "n2", true), pod("c", "n3", false), pod("d", "n4", true)}
	create, remove, err := rollOut(ds, outdated, appsv1.DaemonSetStatus{DesiredNumberScheduled: 4}, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(create) != 1 || create[0] != "n1" {
		t.Fatalf("surge creates on %v, want n1 (50%% of 4 nodes, one surging)", create)
	}
	if len(remove) != 1 || remove[0].Name != "c" {
		t.Fatalf("surge removes %v, want the unready c", remove)
	}
}

// Without surge, outdated pods are deleted while no more than
// maxUnavailable are unavailable.
func TestRollOutMaxUnavailable(t *testing.T) {
	ds := strategy(intstr.FromInt32(2), intstr.FromInt32(0))
	outdated := []*corev1.Pod{pod("a", "n1", true), pod("b", "n2", true), pod("c", "n3", true)}
	create, remove, err := rollOut(ds, outdated, appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, NumberUnavailable: 1}, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(create) != 0 || len(remove) != 1 {
		t.Fatalf("creates %v, removes %d, want none and 1", create, len(remove))
	}
}
