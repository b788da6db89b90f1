package resourcequota

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestSyncComputesStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			"pods": resource.MustParse("5"), "count/pods": resource.MustParse("5"),
			"limits.memory": resource.MustParse("1Gi"), "secrets": resource.MustParse("3"),
			"services.nodeports": resource.MustParse("3"),
		}}}
	withMem := corev1.ResourceRequirements{Limits: corev1.ResourceList{"memory": resource.MustParse("100Mi")}}
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: withMem}}}}
	done := running.DeepCopy()
	done.Name, done.Status.Phase = "b", corev1.PodSucceeded
	other := running.DeepCopy()
	other.Namespace = "elsewhere"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns"}}
	client := fake.NewClientset(q, running, done, other, svc, sec)
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	defer f.Shutdown()
	defer cancel()
	if err := c.sync(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().ResourceQuotas("ns").Get(ctx, "q", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[corev1.ResourceName]string{"pods": "1", "count/pods": "2", "limits.memory": "100Mi", "secrets": "1", "services.nodeports": "1"}
	for name, v := range want {
		u := got.Status.Used[name]
		if u.String() != v {
			t.Errorf("used %s = %s, want %s", name, u.String(), v)
		}
	}
	if len(got.Status.Hard) != len(q.Spec.Hard) {
		t.Errorf("status.hard %v, want spec.hard", got.Status.Hard)
	}
}

// TestRecountsFollowWhatChangesUsage: a pod's status update (usage alone)
// and admission's charge to a quota's status.used start no recount from
// caches that may lag the charges; a pod finishing, a deadline change, a
// quota's new spec and a quota not yet showing its hard limits do.
func TestRecountsFollowWhatChangesUsage(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	running := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
	ready := running.DeepCopy()
	ready.Status.Phase = corev1.PodRunning
	done := running.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	deadline := running.DeepCopy()
	deadline.Spec.ActiveDeadlineSeconds = ptr.To(int64(30))
	for name, c := range map[string]struct {
		old, cur *corev1.Pod
		want     bool
	}{"status only": {running, ready, false}, "finished": {ready, done, true}, "deadline": {running, deadline, true}} {
		if got := usageChanged(pods, c.old, c.cur); got != c.want {
			t.Errorf("%s: usageChanged = %v, want %v", name, got, c.want)
		}
	}
	hard := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}
	q := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: hard}, Status: corev1.ResourceQuotaStatus{Hard: hard, Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}}}
	charged := q.DeepCopy()
	charged.Status.Used[corev1.ResourcePods] = resource.MustParse("2")
	if quotaNeedsCount(q, charged) {
		t.Error("admission's charge started a recount")
	}
	raised := charged.DeepCopy()
	raised.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}
	if !quotaNeedsCount(charged, raised) {
		t.Error("a new spec.hard started no recount")
	}
}
