package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestPodGenerationAndActiveDeadline checks on a real node what the
// upstream "Pod Generation" and "activeDeadlineSeconds to be updated"
// specs do: spec updates bump metadata.generation and the kubelet's
// observedGeneration follows; lowering activeDeadlineSeconds on a running
// pod fails it with reason DeadlineExceeded and kills its containers.
func TestPodGenerationAndActiveDeadline(t *testing.T) {
	c := nodeCluster(t)
	pods := c.Client().CoreV1().Pods("default")
	ctx := context.Background()
	zero := int64(0)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gen-deadline", Generation: 100}, Spec: corev1.PodSpec{
		NodeName: framework.NodeName, TerminationGracePeriodSeconds: &zero,
		Containers: []corev1.Container{{Name: "main", Image: busybox, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "600"}}},
	}}
	p, err := pods.Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Generation != 1 {
		t.Fatalf("new pod's generation %d, want 1", p.Generation)
	}
	get := func() *corev1.Pod {
		cur, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cur
	}
	framework.Eventually(t, time.Minute, "pod running", func() bool { return get().Status.Phase == corev1.PodRunning })
	update := func(mut func(*corev1.Pod)) {
		t.Helper()
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := get()
			mut(cur)
			_, err := pods.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	update(func(p *corev1.Pod) { d := int64(5000); p.Spec.ActiveDeadlineSeconds = &d })
	for range 20 {
		update(func(p *corev1.Pod) { *p.Spec.ActiveDeadlineSeconds-- })
	}
	framework.Eventually(t, time.Minute, "observedGeneration 22", func() bool {
		cur := get()
		return cur.Generation == 22 && cur.Status.ObservedGeneration == 22
	})

	update(func(p *corev1.Pod) { d := int64(5); p.Spec.ActiveDeadlineSeconds = &d })
	framework.Eventually(t, 2*time.Minute, "pod Failed with DeadlineExceeded", func() bool {
		cur := get()
		return cur.Status.Phase == corev1.PodFailed && cur.Status.Reason == "DeadlineExceeded"
	})
	cur := get()
	for _, cs := range cur.Status.ContainerStatuses {
		if cs.State.Terminated == nil {
			t.Errorf("container %s not terminated: %+v", cs.Name, cs.State)
		}
	}
}
