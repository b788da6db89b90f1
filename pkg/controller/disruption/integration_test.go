package disruption_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/disruption"
	"github.com/skiff/skiff/pkg/server/servertest"
)

// TestEvictionAgainstController runs the controller against a real API
// server and evicts through it: the budget the controller computes is
// what eviction spends, and the controller keeps the evicted pod out of
// currentHealthy while it is being deleted.
func TestEvictionAgainstController(t *testing.T) {
	srv := servertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := informers.NewSharedInformerFactory(srv.Client, 0)
	c, err := disruption.New(srv.Client, f, clock.RealClock{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, 1) }()
	t.Cleanup(func() { cancel(); <-done; f.Shutdown() })

	pods := srv.Client.CoreV1().Pods("default")
	for _, name := range []string{"web-a", "web-b", "web-c"} {
		p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:v1"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pdbs := srv.Client.PolicyV1().PodDisruptionBudgets("default")
	if _, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func(policyv1.PodDisruptionBudgetStatus) bool) {
		t.Helper()
		var last policyv1.PodDisruptionBudgetStatus
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			pdb, err := pdbs.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			last = pdb.Status
			return pdb.Status.ObservedGeneration == pdb.Generation && ok(pdb.Status), nil
		})
		if err != nil {
			t.Fatalf("%s: %v (status %+v)", what, err, last)
		}
	}
	waitFor("first status", func(s policyv1.PodDisruptionBudgetStatus) bool {
		return s.ExpectedPods == 3 && s.CurrentHealthy == 3 && s.DesiredHealthy == 2 && s.DisruptionsAllowed == 1
	})

	evict := func(name string) error {
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		return srv.Client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name(name).SubResource("eviction").
			MaxRetries(0).Body(ev).Do(ctx).Error()
	}
	if err := evict("web-a"); err != nil {
		t.Fatal(err)
	}
	if err := evict("web-b"); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("second eviction: %v", err)
	}
	// web-a is gone (it had no node): the controller counts two healthy
	// of two expected and drops the disruption it no longer needs.
	waitFor("after eviction", func(s policyv1.PodDisruptionBudgetStatus) bool {
		return s.ExpectedPods == 2 && s.CurrentHealthy == 2 && s.DisruptionsAllowed == 0 && len(s.DisruptedPods) == 0
	})
}
