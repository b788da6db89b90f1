package job

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestStatusColumnPrefersTerminalConditions: a finished job keeps its
// interim condition, and STATUS shows the terminal one, as upstream.
func TestStatusColumnPrefersTerminalConditions(t *testing.T) {
	cond := func(ts ...batchv1.JobConditionType) *batchv1.Job {
		j := &batchv1.Job{}
		for _, c := range ts {
			j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: c, Status: corev1.ConditionTrue})
		}
		return j
	}
	for _, tc := range []struct {
		job  *batchv1.Job
		want string
	}{
		{cond(batchv1.JobSuccessCriteriaMet, batchv1.JobComplete), "Complete"},
		{cond(batchv1.JobFailureTarget, batchv1.JobFailed), "Failed"},
		{cond(batchv1.JobSuccessCriteriaMet), "SuccessCriteriaMet"},
		{cond(batchv1.JobFailureTarget), "FailureTarget"},
		{cond(batchv1.JobSuspended), "Suspended"},
		{cond(), "Running"},
	} {
		if got := Status(tc.job); got != tc.want {
			t.Errorf("conditions %v: STATUS %q, want %q", tc.job.Status.Conditions, got, tc.want)
		}
	}
}
