package pod_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/server/servertest"
)

// evictionFixture creates pods and budgets in one namespace of a shared
// server and sets their status as the kubelet and the disruption
// controller would.
type evictionFixture struct {
	t      *testing.T
	client kubernetes.Interface
	ns     string
}

func (f *evictionFixture) pod(name string, phase corev1.PodPhase, ready bool) *corev1.Pod {
	f.t.Helper()
	ctx := context.Background()
	p := basic(name)
	p.Labels = map[string]string{"app": "web"}
	created, err := f.client.CoreV1().Pods(f.ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	created.Status.Phase = phase
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	updated, err := f.client.CoreV1().Pods(f.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return updated
}

// budget creates a budget selecting app=web with the given status
// (observed at the current generation unless the status says otherwise).
func (f *evictionFixture) budget(name string, policy *policyv1.UnhealthyPodEvictionPolicyType, st policyv1.PodDisruptionBudgetStatus) {
	f.t.Helper()
	ctx := context.Background()
	pdbs := f.client.PolicyV1().PodDisruptionBudgets(f.ns)
	created, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), UnhealthyPodEvictionPolicy: policy,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if st.ObservedGeneration == 0 {
		st.ObservedGeneration = created.Generation
	}
	created.Status = st
	if _, err := pdbs.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// evict posts an Eviction as EvictV1 does, but without client-go's
// retries of a 429 that asks to retry after 10 s.
func (f *evictionFixture) evict(name string, opts *metav1.DeleteOptions) error {
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}, DeleteOptions: opts}
	return f.client.CoreV1().RESTClient().Post().Namespace(f.ns).Resource("pods").Name(name).SubResource("eviction").
		MaxRetries(0).Body(ev).Do(context.Background()).Error()
}

func (f *evictionFixture) exists(name string) bool {
	f.t.Helper()
	_, err := f.client.CoreV1().Pods(f.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		f.t.Fatal(err)
	}
	return err == nil
}

func (f *evictionFixture) status(name string) policyv1.PodDisruptionBudgetStatus {
	f.t.Helper()
	pdb, err := f.client.PolicyV1().PodDisruptionBudgets(f.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return pdb.Status
}

// budgetCause returns the DisruptionBudget cause of a 429, or fails.
func budgetCause(t *testing.T, err error) string {
	t.Helper()
	var se *apierrors.StatusError
	if !apierrors.IsTooManyRequests(err) || !errors.As(err, &se) {
		t.Fatalf("want 429 TooManyRequests, got %v", err)
	}
	if se.ErrStatus.Message != "Cannot evict pod as it would violate the pod's disruption budget." {
		t.Errorf("message %q", se.ErrStatus.Message)
	}
	for _, c := range se.ErrStatus.Details.Causes {
		if c.Type == policyv1.DisruptionBudgetCause {
			return c.Message
		}
	}
	t.Fatalf("no DisruptionBudget cause in %+v", se.ErrStatus.Details)
	return ""
}

func TestEviction(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	seq := 0
	fixture := func(t *testing.T) *evictionFixture {
		seq++
		ns := "evict-" + string(rune('a'+seq))
		if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return &evictionFixture{t: t, client: srv.Client, ns: ns}
	}

	t.Run("no budget deletes", func(t *testing.T) {
		f := fixture(t)
		f.pod("p", corev1.PodRunning, true)
		if err := f.evict("p", nil); err != nil || f.exists("p") {
			t.Fatalf("evict: %v, still there: %v", err, f.exists("p"))
		}
		// A pod on a node goes gracefully, marked as evicted.
		f.pod("bound", corev1.PodRunning, true)
		if err := f.client.CoreV1().Pods(f.ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "bound"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := f.evict("bound", nil); err != nil {
			t.Fatal(err)
		}
		p, err := f.client.CoreV1().Pods(f.ns).Get(ctx, "bound", metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp == nil {
			t.Fatalf("bound pod: %v %+v", err, p.ObjectMeta)
		}
		marked := false
		for _, c := range p.Status.Conditions {
			marked = marked || (c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "EvictionByEvictionAPI")
		}
		if !marked {
			t.Fatalf("no DisruptionTarget condition: %+v", p.Status.Conditions)
		}
	})

	t.Run("pending and finished pods skip the budget", func(t *testing.T) {
		f := fixture(t)
		f.budget("b", nil, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0, CurrentHealthy: 1, DesiredHealthy: 1})
		for name, phase := range map[string]corev1.PodPhase{"pending": corev1.PodPending, "succeeded": corev1.PodSucceeded, "failed": corev1.PodFailed} {
			f.pod(name, phase, false)
			if err := f.evict(name, nil); err != nil || f.exists(name) {
				t.Fatalf("%s: evict %v", phase, err)
			}
		}
	})

	t.Run("no disruption left is 429", func(t *testing.T) {
		f := fixture(t)
		f.pod("p", corev1.PodRunning, true)
		f.budget("b", nil, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1})
		err := f.evict("p", nil)
		if got, want := budgetCause(t, err), "The disruption budget b needs 1 healthy pods and has 1 currently"; got != want {
			t.Errorf("cause %q, want %q", got, want)
		}
		if !f.exists("p") {
			t.Fatal("pod deleted against its budget")
		}
	})

	t.Run("budget not yet observed is 429", func(t *testing.T) {
		f := fixture(t)
		f.pod("p", corev1.PodRunning, true)
		f.budget("b", nil, policyv1.PodDisruptionBudgetStatus{ObservedGeneration: -1, DisruptionsAllowed: 3})
		if got, want := budgetCause(t, f.evict("p", nil)), "The disruption budget b is still being processed by the server."; got != want {
			t.Errorf("cause %q, want %q", got, want)
		}
	})

	t.Run("spends the budget", func(t *testing.T) {
		f := fixture(t)
		f.pod("p", corev1.PodRunning, true)
		f.pod("q", corev1.PodRunning, true)
		f.budget("b", nil, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1, CurrentHealthy: 2, DesiredHealthy: 1, ExpectedPods: 2})

		// A dry run checks but changes nothing.
		if err := f.evict("p", &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		if !f.exists("p") || f.status("b").DisruptionsAllowed != 1 || len(f.status("b").DisruptedPods) != 0 {
			t.Fatalf("dry run changed something: %+v", f.status("b"))
		}
		// Preconditions are honoured.
		if err := f.evict("p", &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("other"))}}); !apierrors.IsConflict(err) {
			t.Fatalf("UID precondition: %v", err)
		}

		if err := f.evict("p", nil); err != nil {
			t.Fatal(err)
		}
		if f.exists("p") {
			t.Fatal("evicted pod still there")
		}
		st := f.status("b")
		if st.DisruptionsAllowed != 0 || st.DisruptedPods["p"].Time.IsZero() {
			t.Fatalf("budget after eviction: %+v", st)
		}
		if len(st.Conditions) != 1 || st.Conditions[0].Type != policyv1.DisruptionAllowedCondition || st.Conditions[0].Status != metav1.ConditionFalse || st.Conditions[0].Reason != policyv1.InsufficientPodsReason {
			t.Fatalf("condition: %+v", st.Conditions)
		}
		if got := budgetCause(t, f.evict("q", nil)); got != "The disruption budget b needs 1 healthy pods and has 2 currently" {
			t.Errorf("second eviction cause %q", got)
		}
	})

	t.Run("more than one budget is 500", func(t *testing.T) {
		f := fixture(t)
		f.pod("p", corev1.PodRunning, true)
		f.budget("b1", nil, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1})
		f.budget("b2", nil, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1})
		err := f.evict("p", nil)
		var se *apierrors.StatusError
		if !errors.As(err, &se) || se.ErrStatus.Code != http.StatusInternalServerError ||
			se.ErrStatus.Message != "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support." {
			t.Fatalf("two budgets: %v", err)
		}
		if !f.exists("p") {
			t.Fatal("pod deleted")
		}
	})

	t.Run("unready pods", func(t *testing.T) {
		f := fixture(t)
		f.pod("always", corev1.PodRunning, false)
		f.budget("b", ptr.To(policyv1.AlwaysAllow), policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0, CurrentHealthy: 0, DesiredHealthy: 1})
		if err := f.evict("always", nil); err != nil || f.exists("always") {
			t.Fatalf("AlwaysAllow: %v", err)
		}
		if st := f.status("b"); st.DisruptionsAllowed != 0 || len(st.DisruptedPods) != 0 {
			t.Fatalf("AlwaysAllow spent the budget: %+v", st)
		}

		g := fixture(t)
		g.pod("healthy-budget", corev1.PodRunning, false)
		g.budget("b", ptr.To(policyv1.IfHealthyBudget), policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0, CurrentHealthy: 2, DesiredHealthy: 2})
		if err := g.evict("healthy-budget", nil); err != nil || g.exists("healthy-budget") {
			t.Fatalf("IfHealthyBudget with a healthy budget: %v", err)
		}

		h := fixture(t)
		h.pod("short", corev1.PodRunning, false)
		h.budget("b", nil, policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0, CurrentHealthy: 1, DesiredHealthy: 2})
		budgetCause(t, h.evict("short", nil))
		if !h.exists("short") {
			t.Fatal("unready pod of a short budget deleted")
		}
	})
}
