package pod_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/skiff/skiff/pkg/registry/pod"
	"github.com/skiff/skiff/pkg/server/servertest"
)

// activeDeadlineSeconds may be set on a pod that had none, or lowered;
// never raised or removed, as upstream's ValidatePodUpdate says.
func TestActiveDeadlineSecondsUpdate(t *testing.T) {
	ptr := func(v int64) *int64 { return &v }
	cases := []struct {
		name     string
		old, new *int64
		want     string
	}{
		{"set when unset", nil, ptr(5), ""},
		{"lowered", ptr(5000), ptr(4999), ""},
		{"unchanged", ptr(30), ptr(30), ""},
		{"raised", ptr(5), ptr(6), "spec.activeDeadlineSeconds: Invalid value: 6: must be less than or equal to previous value"},
		{"removed", ptr(5), nil, "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"},
		{"zero", nil, ptr(0), "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := basic("p")
			pod.DefaultPod(old)
			old.Spec.ActiveDeadlineSeconds = tc.old
			cur := old.DeepCopy()
			cur.Spec.ActiveDeadlineSeconds = tc.new
			err := pod.ValidatePodUpdate(cur, old).ToAggregate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			case tc.want != "" && strings.Contains(err.Error(), "may not change fields"):
				t.Fatalf("the deadline is an updatable field: %v", err)
			}
		})
	}
}

// metadata.generation starts at 1 whatever the client sent and counts spec
// changes (and the start of a graceful deletion), as upstream's pod
// strategy does; metadata-only updates, client-set generations, bindings
// and status writes leave it.
func TestPodGeneration(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	pods := srv.Client.CoreV1().Pods("default")
	p := basic("gen")
	p.Generation = 100
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "example/init:v1"}}
	p, err := pods.Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Generation != 1 {
		t.Fatalf("new pod's generation %d, want 1", p.Generation)
	}
	want := int64(1)
	for _, step := range []struct {
		name string
		mut  func(*corev1.Pod)
		bump bool
	}{
		{"empty update", func(*corev1.Pod) {}, false},
		{"tolerations added", func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "foo", Operator: corev1.TolerationOpEqual, Value: "bar", Effect: corev1.TaintEffectNoSchedule})
		}, true},
		{"activeDeadlineSeconds set", func(p *corev1.Pod) { d := int64(5000); p.Spec.ActiveDeadlineSeconds = &d }, true},
		{"activeDeadlineSeconds lowered", func(p *corev1.Pod) { *p.Spec.ActiveDeadlineSeconds-- }, true},
		{"container image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "example/app:v2" }, true},
		{"init container image", func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "example/init:v2" }, true},
		{"annotations", func(p *corev1.Pod) { p.Annotations = map[string]string{"key": "value"} }, false},
		{"client-set generation", func(p *corev1.Pod) { p.Generation = 1 }, false},
	} {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := pods.Get(ctx, "gen", metav1.GetOptions{})
			if err != nil {
				return err
			}
			step.mut(cur)
			p, err = pods.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if step.bump {
			want++
		}
		if p.Generation != want {
			t.Fatalf("%s: generation %d, want %d", step.name, p.Generation, want)
		}
	}

	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "gen"}, Target: corev1.ObjectReference{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p, err = pods.Get(ctx, "gen", metav1.GetOptions{}); err != nil || p.Generation != want {
		t.Fatalf("after binding: %v, generation %d, want %d", err, p.Generation, want)
	}
	if c := podCondition(p, corev1.PodScheduled); c.ObservedGeneration != want {
		t.Fatalf("PodScheduled observedGeneration %d, want %d", c.ObservedGeneration, want)
	}

	// The kubelet reports what it acted on; a writer that leaves
	// observedGeneration out keeps the stored values.
	p.Status.Phase = corev1.PodRunning
	p.Status.ObservedGeneration = want
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, ObservedGeneration: want})
	if p, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.Status.ObservedGeneration = 0
	for i := range p.Status.Conditions {
		p.Status.Conditions[i].ObservedGeneration = 0
	}
	if p, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.Generation != want || p.Status.ObservedGeneration != want {
		t.Fatalf("status writes: generation %d observedGeneration %d, want %d", p.Generation, p.Status.ObservedGeneration, want)
	}
	for _, ty := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReady} {
		if c := podCondition(p, ty); c.ObservedGeneration != want {
			t.Errorf("condition %s observedGeneration %d, want %d kept", ty, c.ObservedGeneration, want)
		}
	}

	// A graceful delete answers 200 with the pod and bumps its generation
	// once; a second, shorter one does not.
	var deleted corev1.Pod
	var code int
	err = srv.Client.CoreV1().RESTClient().Delete().AbsPath("/api/v1/namespaces/default/pods/gen").
		Param("gracePeriodSeconds", "60").Do(ctx).StatusCode(&code).Into(&deleted)
	if err != nil || code != http.StatusOK {
		t.Fatalf("graceful delete: %v, status %d", err, code)
	}
	want++
	if deleted.Generation != want || deleted.DeletionTimestamp == nil {
		t.Fatalf("graceful delete: generation %d (want %d), deletionTimestamp %v", deleted.Generation, want, deleted.DeletionTimestamp)
	}
	grace := int64(30)
	if err := pods.Delete(ctx, "gen", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	if p, err = pods.Get(ctx, "gen", metav1.GetOptions{}); err != nil || p.Generation != want {
		t.Fatalf("second delete: %v, generation %d, want %d", err, p.Generation, want)
	}
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}
