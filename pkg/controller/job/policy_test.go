package job

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// exit marks a pod finished with the given exit code (0 succeeds).
func (w *world) exit(p corev1.Pod, code int32) {
	w.t.Helper()
	p.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		p.Status.Phase = corev1.PodFailed
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, FinishedAt: metav1.NewTime(w.clock.Now()),
	}}}}
	if _, err := w.client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), &p, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// runningByIndex returns the running pods of an Indexed job by index.
func (w *world) runningByIndex() map[string]corev1.Pod {
	out := map[string]corev1.Pod{}
	for _, p := range w.running() {
		out[p.Annotations[CompletionIndexAnnotation]] = p
	}
	return out
}

// conditionTypes lists the job's true conditions in order.
func conditionTypes(j *batchv1.Job) []batchv1.JobConditionType {
	var out []batchv1.JobConditionType
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out = append(out, c.Type)
		}
	}
	return out
}

func sameTypes(a, b []batchv1.JobConditionType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func indexedJob(completions, parallelism int32) *batchv1.Job {
	j := newJob(ptr.To(completions), ptr.To(parallelism))
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	return j
}

func TestCompletionSetsSuccessCriteriaMetFirst(t *testing.T) {
	w := newWorld(t, newJob(ptr.To[int32](1), ptr.To[int32](1)))
	w.mustSync()
	w.exit(w.running()[0], 0)
	w.mustSync()
	got := w.job()
	if want := []batchv1.JobConditionType{batchv1.JobSuccessCriteriaMet, batchv1.JobComplete}; !sameTypes(conditionTypes(got), want) {
		t.Fatalf("conditions %v, want %v", conditionTypes(got), want)
	}
	if c := condition(got, batchv1.JobComplete); c.Reason != "CompletionsReached" || got.Status.CompletionTime == nil {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestSuccessPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule batchv1.SuccessPolicyRule
	}{
		{"succeededIndexes", batchv1.SuccessPolicyRule{SucceededIndexes: ptr.To("0")}},
		{"succeededCount", batchv1.SuccessPolicyRule{SucceededCount: ptr.To[int32](1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := indexedJob(5, 2)
			j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{tc.rule}}
			w := newWorld(t, j)
			w.mustSync()
			run := w.runningByIndex()
			if len(run) != 2 {
				t.Fatalf("running %v", run)
			}
			w.exit(run["0"], 0)
			w.mustSync()
			got := w.job()
			c := condition(got, batchv1.JobSuccessCriteriaMet)
			if c == nil || c.Reason != "SuccessPolicy" || condition(got, batchv1.JobComplete) != nil {
				t.Fatalf("want only SuccessCriteriaMet/SuccessPolicy while index 1 stops: %+v", got.Status)
			}
			if len(w.running()) != 0 {
				t.Fatal("the remaining pod was not deleted")
			}
			w.mustSync()
			got = w.job()
			if want := []batchv1.JobConditionType{batchv1.JobSuccessCriteriaMet, batchv1.JobComplete}; !sameTypes(conditionTypes(got), want) {
				t.Fatalf("conditions %v, want %v", conditionTypes(got), want)
			}
			if c := condition(got, batchv1.JobComplete); c.Reason != "SuccessPolicy" || c.Message != "Matched rules at index 0" {
				t.Fatalf("complete condition %+v", c)
			}
			if got.Status.CompletedIndexes != "0" || got.Status.Succeeded != 1 || got.Status.Active != 0 ||
				*got.Status.Terminating != 0 || *got.Status.Ready != 0 || got.Status.Failed != 0 {
				t.Fatalf("status %+v", got.Status)
			}
			if len(w.pods()) != 1 {
				t.Fatalf("%d pods created, want only the first two", len(w.pods()))
			}
		})
	}
}

func TestSuccessPolicyAllIndexes(t *testing.T) {
	j := indexedJob(2, 2)
	j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededCount: ptr.To[int32](2)}}}
	w := newWorld(t, j)
	w.mustSync()
	for _, p := range w.running() {
		w.exit(p, 0)
	}
	w.mustSync()
	got := w.job()
	if c := condition(got, batchv1.JobComplete); c == nil || c.Reason != "SuccessPolicy" || condition(got, batchv1.JobSuccessCriteriaMet) == nil {
		t.Fatalf("status %+v", got.Status)
	}
	if got.Status.Failed != 0 || got.Status.Succeeded != 2 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestPodFailurePolicyFailJob(t *testing.T) {
	j := newJob(ptr.To[int32](4), ptr.To[int32](2))
	j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:      batchv1.PodFailurePolicyActionFailJob,
		OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{1}},
	}}}
	w := newWorld(t, j)
	w.mustSync()
	run := w.running()
	w.exit(run[0], 1)
	w.mustSync()
	got := w.job()
	c := condition(got, batchv1.JobFailureTarget)
	if c == nil || c.Reason != "PodFailurePolicy" || condition(got, batchv1.JobFailed) != nil {
		t.Fatalf("want only FailureTarget/PodFailurePolicy: %+v", got.Status)
	}
	if len(w.running()) != 0 {
		t.Fatal("the other pod was not deleted")
	}
	w.mustSync()
	got = w.job()
	if want := []batchv1.JobConditionType{batchv1.JobFailureTarget, batchv1.JobFailed}; !sameTypes(conditionTypes(got), want) {
		t.Fatalf("conditions %v, want %v", conditionTypes(got), want)
	}
	f := condition(got, batchv1.JobFailed)
	if f.Reason != "PodFailurePolicy" || f.Message != c.Message {
		t.Fatalf("failed condition %+v", f)
	}
	// The failed pod and the one stopped with the job both count.
	if got.Status.Failed != 2 || got.Status.Active != 0 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestPodFailurePolicyIgnoreAndCount(t *testing.T) {
	j := newJob(ptr.To[int32](1), ptr.To[int32](1))
	j.Spec.BackoffLimit = ptr.To[int32](0)
	j.Spec.PodReplacementPolicy = ptr.To(batchv1.Failed)
	j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{42}}},
	}}
	w := newWorld(t, j)
	w.mustSync()
	w.exit(w.running()[0], 42)
	w.mustSync()
	if got := w.job(); got.Status.Failed != 0 || isFinished(got) {
		t.Fatalf("an ignored failure counted: %+v", got.Status)
	}
	// An evicted pod (DisruptionTarget) is ignored too.
	w.clock.Step(time.Minute)
	w.mustSync()
	run := w.running()
	if len(run) != 1 {
		t.Fatalf("no replacement after the ignored failure: %d running", len(run))
	}
	p := run[0]
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI"})
	if _, err := w.client.CoreV1().Pods("default").UpdateStatus(context.Background(), &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.exit(w.running()[0], 137)
	w.mustSync()
	if got := w.job(); got.Status.Failed != 0 || isFinished(got) {
		t.Fatalf("an evicted pod counted: %+v", got.Status)
	}
	w.clock.Step(time.Minute)
	w.mustSync()
	w.exit(w.running()[0], 3)
	w.mustSync()
	got := w.job()
	if c := condition(got, batchv1.JobFailed); c == nil || c.Reason != "BackoffLimitExceeded" || got.Status.Failed != 1 {
		t.Fatalf("a counted failure past backoffLimit 0: %+v", got.Status)
	}
}

func TestBackoffLimitPerIndex(t *testing.T) {
	j := indexedJob(2, 2)
	j.Spec.BackoffLimit = ptr.To[int32](1 << 30)
	j.Spec.BackoffLimitPerIndex = ptr.To[int32](1)
	w := newWorld(t, j)
	w.mustSync()
	run := w.runningByIndex()
	if run["0"].Annotations[indexFailureCountAnnotation] != "0" {
		t.Fatalf("first pod annotations %v", run["0"].Annotations)
	}
	w.exit(run["0"], 0)
	w.exit(run["1"], 1)
	w.mustSync()
	got := w.job()
	// The failed pod is kept until its replacement exists.
	if got.Status.Failed != 0 || got.Status.CompletedIndexes != "0" || ptr.Deref(got.Status.FailedIndexes, "x") != "" {
		t.Fatalf("status %+v", got.Status)
	}
	if len(w.running()) != 0 {
		t.Fatal("replacement before the per-index back-off")
	}
	w.clock.Step(10 * time.Second)
	w.mustSync()
	run = w.runningByIndex()
	if p, ok := run["1"]; !ok || p.Annotations[indexFailureCountAnnotation] != "1" {
		t.Fatalf("replacement of index 1: %v", run)
	}
	w.mustSync()
	if got := w.job(); got.Status.Failed != 1 {
		t.Fatalf("the replaced pod was not counted: %+v", got.Status)
	}
	w.exit(w.runningByIndex()["1"], 1)
	w.mustSync()
	got = w.job()
	c := condition(got, batchv1.JobFailed)
	if c == nil || c.Reason != "FailedIndexes" || condition(got, batchv1.JobFailureTarget) == nil {
		t.Fatalf("want Failed/FailedIndexes: %+v", got.Status)
	}
	if ptr.Deref(got.Status.FailedIndexes, "") != "1" || got.Status.CompletedIndexes != "0" || got.Status.Failed != 2 || got.Status.Succeeded != 1 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestMaxFailedIndexes(t *testing.T) {
	j := indexedJob(4, 1)
	j.Spec.BackoffLimit = ptr.To[int32](1 << 30)
	j.Spec.BackoffLimitPerIndex = ptr.To[int32](0)
	j.Spec.MaxFailedIndexes = ptr.To[int32](0)
	w := newWorld(t, j)
	w.mustSync()
	w.exit(w.running()[0], 1)
	w.mustSync()
	got := w.job()
	if c := condition(got, batchv1.JobFailed); c == nil || c.Reason != "MaxFailedIndexesExceeded" {
		t.Fatalf("want MaxFailedIndexesExceeded: %+v", got.Status)
	}
	if ptr.Deref(got.Status.FailedIndexes, "") != "0" || got.Status.Failed != 1 || len(w.pods()) != 1 {
		t.Fatalf("status %+v, %d pods", got.Status, len(w.pods()))
	}
}

func TestFailIndexAction(t *testing.T) {
	j := indexedJob(2, 2)
	j.Spec.BackoffLimit = ptr.To[int32](1 << 30)
	j.Spec.BackoffLimitPerIndex = ptr.To[int32](1)
	j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:      batchv1.PodFailurePolicyActionFailIndex,
		OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{1}},
	}}}
	w := newWorld(t, j)
	w.mustSync()
	run := w.runningByIndex()
	w.exit(run["0"], 0)
	w.exit(run["1"], 1)
	w.mustSync()
	got := w.job()
	if c := condition(got, batchv1.JobFailed); c == nil || c.Reason != "FailedIndexes" {
		t.Fatalf("want FailedIndexes: %+v", got.Status)
	}
	if ptr.Deref(got.Status.FailedIndexes, "") != "1" || got.Status.CompletedIndexes != "0" || got.Status.Failed != 1 || got.Status.Succeeded != 1 || len(w.pods()) != 2 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestSuccessPolicyMatching(t *testing.T) {
	j := indexedJob(10, 1)
	for _, tc := range []struct {
		rule      batchv1.SuccessPolicyRule
		succeeded []int
		want      bool
	}{
		{batchv1.SuccessPolicyRule{SucceededIndexes: ptr.To("0-2")}, []int{0, 1}, false},
		{batchv1.SuccessPolicyRule{SucceededIndexes: ptr.To("0-2")}, []int{0, 1, 2}, true},
		{batchv1.SuccessPolicyRule{SucceededIndexes: ptr.To("0-2,7"), SucceededCount: ptr.To[int32](2)}, []int{1, 7}, true},
		{batchv1.SuccessPolicyRule{SucceededIndexes: ptr.To("0-2"), SucceededCount: ptr.To[int32](2)}, []int{1, 7}, false},
		{batchv1.SuccessPolicyRule{SucceededCount: ptr.To[int32](3)}, []int{4, 5, 9}, true},
		{batchv1.SuccessPolicyRule{SucceededCount: ptr.To[int32](3)}, []int{4, 5}, false},
	} {
		j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{tc.rule}}
		m := map[int]bool{}
		for _, i := range tc.succeeded {
			m[i] = true
		}
		if _, got := matchSuccessPolicy(j, m); got != tc.want {
			t.Errorf("rule %+v with %v: got %v", tc.rule, tc.succeeded, got)
		}
	}
}
