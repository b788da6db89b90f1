package poddisruptionbudget_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/policy/poddisruptionbudget"
	"github.com/skiff/skiff/pkg/registry/validationtest"
	"github.com/skiff/skiff/pkg/server/servertest"
)

func TestValidateSpec(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	cases := []struct {
		name string
		spec policyv1.PodDisruptionBudgetSpec
		want []string
	}{
		{"min count", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2)), Selector: sel}, nil},
		{"max percent", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromString("25%")), Selector: sel}, nil},
		{"neither (allowed)", policyv1.PodDisruptionBudgetSpec{Selector: sel}, nil},
		{"negative", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(-1))},
			[]string{"spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"}},
		{"over 100%", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromString("101%"))},
			[]string{`spec.maxUnavailable: Invalid value: "101%": must not be greater than 100%`}},
		{"not a percent", policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("-5%"))},
			[]string{`spec.minAvailable: Invalid value: "-5%": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')`}},
		{"bad selector", policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}},
			[]string{`spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator`}},
		{"bad policy", policyv1.PodDisruptionBudgetSpec{UnhealthyPodEvictionPolicy: ptr.To(policyv1.UnhealthyPodEvictionPolicyType("Sometimes"))},
			[]string{`spec.unhealthyPodEvictionPolicy: Unsupported value: "Sometimes": supported values: "AlwaysAllow", "IfHealthyBudget"`}},
	}
	for _, tc := range cases {
		validationtest.Expect(t, tc.name, poddisruptionbudget.ValidateSpec(&tc.spec, field.NewPath("spec")), tc.want)
	}
	both := policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	errs := poddisruptionbudget.ValidateSpec(&both, field.NewPath("spec"))
	if len(errs) != 1 || errs[0].Field != "spec" || !strings.HasSuffix(errs[0].Error(), "minAvailable and maxUnavailable cannot be both set") {
		t.Errorf("both set: %v", errs)
	}
	st := policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: -1}
	validationtest.Expect(t, "status", poddisruptionbudget.ValidateStatus(&st, field.NewPath("status")),
		[]string{"status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0"})
}

func TestRow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: metav1.NewTime(now.Add(-5 * time.Minute))},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%"))}, Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 2}}
	res := poddisruptionbudget.NewResource()
	var names []string
	for _, c := range res.Table.Columns {
		names = append(names, strings.ToUpper(c.Name))
	}
	if want := []string{"NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("columns %q", names)
	}
	if got, want := res.Table.Row(pdb, now), []interface{}{"web", "50%", "N/A", int64(2), "5m"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("row %#v, want %#v", got, want)
	}
}

// TestAPI drives the resource as kubectl does: discovery with the short
// name, what `kubectl create pdb NAME --selector=app=x --min-available=2`
// sends, a spec update that bumps the generation while status stays, and
// a status update only through /status.
func TestAPI(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	list, err := srv.Client.Discovery().ServerResourcesForGroupVersion("policy/v1")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]metav1.APIResource{}
	for _, r := range list.APIResources {
		found[r.Name] = r
	}
	if r, ok := found["poddisruptionbudgets"]; !ok || !r.Namespaced || !reflect.DeepEqual(r.ShortNames, []string{"pdb"}) || r.Kind != "PodDisruptionBudget" {
		t.Fatalf("discovery: %+v", list.APIResources)
	}
	if _, ok := found["poddisruptionbudgets/status"]; !ok {
		t.Fatalf("no status subresource in discovery: %+v", list.APIResources)
	}

	pdbs := srv.Client.PolicyV1().PodDisruptionBudgets("default")
	minAvailable := intstr.Parse("2")
	created, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &minAvailable,
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
		},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 5},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Generation != 1 || created.Status.DisruptionsAllowed != 0 {
		t.Fatalf("created: generation %d, status %+v", created.Generation, created.Status)
	}

	created.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, DisruptionsAllowed: 1, CurrentHealthy: 3, DesiredHealthy: 2, ExpectedPods: 3}
	withStatus, err := pdbs.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil || withStatus.Status.DisruptionsAllowed != 1 {
		t.Fatalf("status update: %v %+v", err, withStatus)
	}
	withStatus.Spec.MinAvailable = ptr.To(intstr.FromString("50%"))
	withStatus.Status.DisruptionsAllowed = 9
	updated, err := pdbs.Update(ctx, withStatus, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Generation != 2 || updated.Status.DisruptionsAllowed != 1 || updated.Spec.MinAvailable.String() != "50%" {
		t.Fatalf("spec update: generation %d, status %+v, spec %+v", updated.Generation, updated.Status, updated.Spec)
	}

	updated.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(1))
	_, err = pdbs.Update(ctx, updated, metav1.UpdateOptions{})
	var se *apierrors.StatusError
	if !apierrors.IsInvalid(err) || !errors.As(err, &se) || len(se.ErrStatus.Details.Causes) != 1 || se.ErrStatus.Details.Causes[0].Field != "spec" {
		t.Fatalf("both bounds: %v", err)
	}
	updated.Spec.MaxUnavailable = nil
	updated.Status.CurrentHealthy = -1
	if _, err := pdbs.UpdateStatus(ctx, updated, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "status.currentHealthy") {
		t.Fatalf("negative status: %v", err)
	}

	// kubectl patch (strategic merge) and the OpenAPI document kubectl
	// validates against.
	patched, err := pdbs.Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"spec":{"minAvailable":3}}`), metav1.PatchOptions{})
	if err != nil || patched.Spec.MinAvailable.String() != "3" || patched.Generation != 3 {
		t.Fatalf("patch: %v %+v", err, patched)
	}
	doc, err := srv.Client.Discovery().RESTClient().Get().AbsPath("/openapi/v3/apis/policy/v1").Do(ctx).Raw()
	if err != nil || !strings.Contains(string(doc), "io.k8s.api.policy.v1.PodDisruptionBudget") {
		t.Fatalf("openapi v3 policy/v1: %v", err)
	}

	table := &metav1.Table{}
	err = srv.Client.PolicyV1().RESTClient().Get().Namespace("default").Resource("poddisruptionbudgets").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Into(table)
	if err != nil {
		t.Fatal(err)
	}
	if len(table.ColumnDefinitions) != 5 || table.ColumnDefinitions[1].Name != "Min Available" || len(table.Rows) != 1 || table.Rows[0].Cells[1] != "3" || table.Rows[0].Cells[2] != "N/A" {
		t.Fatalf("table: %+v", table)
	}
}
