package job

import (
	"fmt"
	"slices"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// failureVerdict is what a job's pod failure policy says about one failed
// pod.
type failureVerdict struct {
	// action is the matched rule's action, "" when no rule matched.
	action batchv1.PodFailurePolicyAction
	// counts is whether the failure counts towards backoffLimit and
	// backoffLimitPerIndex (false only for Ignore).
	counts bool
	// failJobMessage explains a FailJob match.
	failJobMessage string
}

// judgeFailure matches a failed pod against the job's pod failure policy:
// the first rule whose exit codes or pod conditions match decides.
func judgeFailure(j *batchv1.Job, p *corev1.Pod) failureVerdict {
	pfp := j.Spec.PodFailurePolicy
	if pfp == nil {
		return failureVerdict{counts: true}
	}
	for i, r := range pfp.Rules {
		var msg string
		switch {
		case r.OnExitCodes != nil:
			cs := matchExitCodes(p, r.OnExitCodes)
			if cs == nil {
				continue
			}
			msg = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %d matching %s rule at index %d",
				cs.Name, p.Namespace, p.Name, cs.State.Terminated.ExitCode, r.Action, i)
		case len(r.OnPodConditions) > 0:
			cond := matchPodConditions(p, r.OnPodConditions)
			if cond == nil {
				continue
			}
			msg = fmt.Sprintf("Pod %s/%s has condition %s matching %s rule at index %d", p.Namespace, p.Name, cond.Type, r.Action, i)
		default:
			continue
		}
		switch r.Action {
		case batchv1.PodFailurePolicyActionIgnore:
			return failureVerdict{action: r.Action}
		case batchv1.PodFailurePolicyActionFailJob:
			return failureVerdict{action: r.Action, counts: true, failJobMessage: msg}
		case batchv1.PodFailurePolicyActionFailIndex, batchv1.PodFailurePolicyActionCount:
			return failureVerdict{action: r.Action, counts: true}
		}
	}
	return failureVerdict{counts: true}
}

// matchExitCodes returns the first terminated, non-zero container (then
// init container) whose exit code meets req.
func matchExitCodes(p *corev1.Pod, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 || (req.ContainerName != nil && *req.ContainerName != cs.Name) {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in) || (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in) {
				return cs
			}
		}
	}
	return nil
}

func matchPodConditions(p *corev1.Pod, patterns []batchv1.PodFailurePolicyOnPodConditionsPattern) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		cond := &p.Status.Conditions[i]
		for _, pat := range patterns {
			if cond.Type == pat.Type && cond.Status == pat.Status {
				return cond
			}
		}
	}
	return nil
}

// onlyReplaceFailed reports whether a pod is replaced only once it has
// failed, not while it is still terminating.
func onlyReplaceFailed(j *batchv1.Job) bool {
	return j.Spec.PodReplacementPolicy != nil && *j.Spec.PodReplacementPolicy == batchv1.Failed
}

// isPodFailed reports whether a pod of the job counts as failed: its phase
// says so, or it is being deleted before finishing (unless the job waits
// for the terminal phase).
func isPodFailed(j *batchv1.Job, p *corev1.Pod) bool {
	switch {
	case p.Status.Phase == corev1.PodFailed:
		return true
	case onlyReplaceFailed(j):
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

// failJobMessage returns the message of the first failed pod matching a
// FailJob rule, or "".
func failJobMessage(j *batchv1.Job, pods []*corev1.Pod) string {
	if j.Spec.PodFailurePolicy == nil {
		return ""
	}
	for _, p := range pods {
		if isPodFailed(j, p) {
			if v := judgeFailure(j, p); v.failJobMessage != "" {
				return v.failJobMessage
			}
		}
	}
	return ""
}

// matchSuccessPolicy returns the message of the first success policy rule
// the succeeded indexes meet.
func matchSuccessPolicy(j *batchv1.Job, succeeded map[int]bool) (string, bool) {
	sp := j.Spec.SuccessPolicy
	if sp == nil || len(succeeded) == 0 {
		return "", false
	}
	completions := ptrVal(j.Spec.Completions, 0)
	for i, r := range sp.Rules {
		met := false
		if r.SucceededIndexes != nil {
			required := parseIndexes(*r.SucceededIndexes, completions)
			if len(required) == 0 {
				continue
			}
			have := 0
			for ix := range required {
				if succeeded[ix] {
					have++
				}
			}
			met = have == len(required) || (r.SucceededCount != nil && have >= int(*r.SucceededCount))
		} else if r.SucceededCount != nil {
			met = len(succeeded) >= int(*r.SucceededCount)
		}
		if met {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}

// Per-index failure counts, carried from a failed pod to its replacement.
const (
	indexFailureCountAnnotation        = batchv1.JobIndexFailureCountAnnotation
	indexIgnoredFailureCountAnnotation = batchv1.JobIndexIgnoredFailureCountAnnotation
)

func annotationCount(p *corev1.Pod, key string) int32 {
	v, err := strconv.ParseInt(p.Annotations[key], 10, 32)
	if err != nil || v < 0 {
		return 0
	}
	return int32(v)
}

// isIndexFailed reports whether a failed pod fails its index: it matched
// a FailIndex rule, or its counted failure used up backoffLimitPerIndex.
func isIndexFailed(j *batchv1.Job, p *corev1.Pod) bool {
	if !isPodFailed(j, p) {
		return false
	}
	v := judgeFailure(j, p)
	if v.action == batchv1.PodFailurePolicyActionFailIndex {
		return true
	}
	return v.counts && annotationCount(p, indexFailureCountAnnotation) >= ptrVal(j.Spec.BackoffLimitPerIndex, 0)
}

// replacementCounts are the failure counts the replacement of failed pod
// p starts with (zero for a first pod).
func replacementCounts(j *batchv1.Job, p *corev1.Pod) (failures, ignored int32) {
	if p == nil {
		return 0, 0
	}
	failures, ignored = annotationCount(p, indexFailureCountAnnotation), annotationCount(p, indexIgnoredFailureCountAnnotation)
	if judgeFailure(j, p).counts {
		failures++
	} else {
		ignored++
	}
	return failures, ignored
}
