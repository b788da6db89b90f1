// Package job is the registry strategy for batch/v1 jobs.
package job

import (
	"context"
	"fmt"
	"math"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// The labels a job's pods carry and its generated selector matches.
const (
	ControllerUIDLabel       = batchv1.ControllerUidLabel
	JobNameLabel             = batchv1.JobNameLabel
	legacyControllerUIDLabel = "controller-uid"
	legacyJobNameLabel       = "job-name"
)

// NewResource describes the jobs resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: batchv1.SchemeGroupVersion.WithResource("jobs"),
		Kind:                 "Job",
		SingularName:         "job",
		Categories:           []string{"all"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &batchv1.Job{} },
		NewList:              func() runtime.Object { return &batchv1.JobList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{Metadata: true},
		Fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.successful": fmt.Sprint(obj.(*batchv1.Job).Status.Succeeded)}
		},
		Table: &registry.TableColumns{
			Columns: append([]metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Status", Type: "string", Description: "Status of the job."},
				{Name: "Completions", Type: "string", Description: batchv1.JobStatus{}.SwaggerDoc()["succeeded"]},
				{Name: "Duration", Type: "string", Description: "Time required to complete the job."},
				registry.AgeColumn,
			}, pod.TemplateColumnDefinitions(batchv1.JobSpec{}.SwaggerDoc()["selector"])...),
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				j := obj.(*batchv1.Job)
				containers, images := pod.TemplateColumns(&j.Spec.Template)
				return []interface{}{j.Name, Status(j), Completions(j), jobDuration(j, now), registry.Age(j.CreationTimestamp, now), containers, images, pod.SelectorString(j.Spec.Selector)}
			},
		},
	}
}

// Completions renders the COMPLETIONS column: "2/5", or "2/1 of 3" for
// jobs with parallelism and no completion count.
func Completions(j *batchv1.Job) string {
	if j.Spec.Completions != nil {
		return fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
	}
	parallelism := int32(0)
	if j.Spec.Parallelism != nil {
		parallelism = *j.Spec.Parallelism
	}
	if parallelism > 1 {
		return fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, parallelism)
	}
	return fmt.Sprintf("%d/1", j.Status.Succeeded)
}

// Status renders the STATUS column as upstream does: terminal conditions
// first, then interim ones (a finished job also keeps its interim
// SuccessCriteriaMet or FailureTarget condition).
func Status(j *batchv1.Job) string {
	has := func(t batchv1.JobConditionType) bool {
		for _, c := range j.Status.Conditions {
			if c.Type == t && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}
	switch {
	case has(batchv1.JobComplete):
		return "Complete"
	case has(batchv1.JobFailed):
		return "Failed"
	case j.DeletionTimestamp != nil:
		return "Terminating"
	case has(batchv1.JobSuspended):
		return "Suspended"
	case has(batchv1.JobFailureTarget):
		return "FailureTarget"
	case has(batchv1.JobSuccessCriteriaMet):
		return "SuccessCriteriaMet"
	}
	return "Running"
}

func jobDuration(j *batchv1.Job, now time.Time) string {
	switch {
	case j.Status.StartTime == nil:
		return ""
	case j.Status.CompletionTime == nil:
		return duration.HumanDuration(now.Sub(j.Status.StartTime.Time))
	}
	return duration.HumanDuration(j.Status.CompletionTime.Sub(j.Status.StartTime.Time))
}

type strategy struct{ registry.SpecStatusStrategy }

// Default applies upstream's job defaults.
func (strategy) Default(obj runtime.Object) {
	j := obj.(*batchv1.Job)
	s := &j.Spec
	if s.Completions == nil && s.Parallelism == nil {
		one, alsoOne := int32(1), int32(1)
		s.Completions, s.Parallelism = &one, &alsoOne
	}
	if s.Parallelism == nil {
		one := int32(1)
		s.Parallelism = &one
	}
	if s.BackoffLimit == nil {
		// With a per-index limit the job-wide one is off unless set.
		limit := int32(6)
		if s.BackoffLimitPerIndex != nil {
			limit = math.MaxInt32
		}
		s.BackoffLimit = &limit
	}
	if s.CompletionMode == nil {
		m := batchv1.NonIndexedCompletion
		s.CompletionMode = &m
	}
	if s.Suspend == nil {
		f := false
		s.Suspend = &f
	}
	if s.PodReplacementPolicy == nil {
		// A pod failure policy needs to see how a pod ended, so its
		// replacement waits for the terminal phase.
		p := batchv1.TerminatingOrFailed
		if s.PodFailurePolicy != nil {
			p = batchv1.Failed
		}
		s.PodReplacementPolicy = &p
	}
	if s.PodFailurePolicy != nil {
		for i := range s.PodFailurePolicy.Rules {
			for k := range s.PodFailurePolicy.Rules[i].OnPodConditions {
				if c := &s.PodFailurePolicy.Rules[i].OnPodConditions[k]; c.Status == "" {
					c.Status = corev1.ConditionTrue
				}
			}
		}
	}
	if s.ManualSelector == nil || !*s.ManualSelector {
		generateSelector(j)
	}
	pod.DefaultPodSpec(&s.Template.Spec)
}

// generateSelector labels the template with the job's uid and name and
// selects on the uid, unless the user manages the selector.
func generateSelector(j *batchv1.Job) {
	if j.UID == "" {
		return
	}
	uid := string(j.UID)
	if j.Spec.Template.Labels == nil {
		j.Spec.Template.Labels = map[string]string{}
	}
	l := j.Spec.Template.Labels
	l[ControllerUIDLabel], l[legacyControllerUIDLabel] = uid, uid
	l[JobNameLabel], l[legacyJobNameLabel] = j.Name, j.Name
	if j.Spec.Selector == nil {
		j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{ControllerUIDLabel: uid}}
	}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*batchv1.Job))
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	j, o := obj.(*batchv1.Job), old.(*batchv1.Job)
	errs := validate(j)
	spec := field.NewPath("spec")
	errs = append(errs, registry.Immutable(!apiequality.Semantic.DeepEqual(j.Spec.Selector, o.Spec.Selector), spec.Child("selector"))...)
	errs = append(errs, registry.Immutable(!apiequality.Semantic.DeepEqual(j.Spec.CompletionMode, o.Spec.CompletionMode), spec.Child("completionMode"))...)
	if !apiequality.Semantic.DeepEqual(j.Spec.Template, o.Spec.Template) && !(o.Spec.Suspend != nil && *o.Spec.Suspend) {
		errs = append(errs, field.Invalid(spec.Child("template"), "", "field is immutable"))
	}
	indexed := j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
	if !indexed {
		errs = append(errs, registry.Immutable(!apiequality.Semantic.DeepEqual(j.Spec.Completions, o.Spec.Completions), spec.Child("completions"))...)
	}
	return errs
}

func validate(j *batchv1.Job) field.ErrorList {
	spec := field.NewPath("spec")
	s := &j.Spec
	var errs field.ErrorList
	for name, v := range map[string]*int32{"parallelism": s.Parallelism, "completions": s.Completions, "backoffLimit": s.BackoffLimit} {
		if v != nil && *v < 0 {
			errs = append(errs, field.Invalid(spec.Child(name), *v, "must be greater than or equal to 0"))
		}
	}
	if s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds <= 0 {
		errs = append(errs, field.Invalid(spec.Child("activeDeadlineSeconds"), *s.ActiveDeadlineSeconds, "must be greater than 0"))
	}
	if s.TTLSecondsAfterFinished != nil && *s.TTLSecondsAfterFinished < 0 {
		errs = append(errs, field.Invalid(spec.Child("ttlSecondsAfterFinished"), *s.TTLSecondsAfterFinished, "must be greater than or equal to 0"))
	}
	if m := s.CompletionMode; m != nil && *m != batchv1.NonIndexedCompletion && *m != batchv1.IndexedCompletion {
		errs = append(errs, field.NotSupported(spec.Child("completionMode"), *m, []string{string(batchv1.NonIndexedCompletion), string(batchv1.IndexedCompletion)}))
	}
	if m := s.CompletionMode; m != nil && *m == batchv1.IndexedCompletion && s.Completions == nil {
		errs = append(errs, field.Required(spec.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
	}
	errs = append(errs, validatePolicies(s, spec)...)
	errs = append(errs, pod.ValidateSelectedTemplate(s.Selector, &s.Template, spec)...)
	switch p := s.Template.Spec.RestartPolicy; p {
	case corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), p, []string{string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}))
	}
	return errs
}

// ValidateJobTemplateSpec validates a CronJob's job template; its selector
// is generated later, so only the pod template is checked against it.
func ValidateJobTemplateSpec(spec *batchv1.JobSpec, path *field.Path) field.ErrorList {
	errs := pod.ValidatePodTemplateSpec(&spec.Template, path.Child("template"))
	switch p := spec.Template.Spec.RestartPolicy; p {
	case corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(path.Child("template", "spec", "restartPolicy"), p, []string{string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}))
	}
	return errs
}

// validatePolicies checks the fields that only make sense together, as
// upstream does: per-index limits and success policies need Indexed
// completion, a pod failure policy needs restartPolicy Never.
func validatePolicies(s *batchv1.JobSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	indexed := s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion
	for name, v := range map[string]*int32{"backoffLimitPerIndex": s.BackoffLimitPerIndex, "maxFailedIndexes": s.MaxFailedIndexes} {
		if v == nil {
			continue
		}
		if *v < 0 {
			errs = append(errs, field.Invalid(spec.Child(name), *v, "must be greater than or equal to 0"))
		}
		if !indexed {
			errs = append(errs, field.Invalid(spec.Child(name), *v, "requires indexed completion mode"))
		}
	}
	if s.MaxFailedIndexes != nil && s.BackoffLimitPerIndex == nil {
		errs = append(errs, field.Required(spec.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
	}
	if sp := s.SuccessPolicy; sp != nil {
		path := spec.Child("successPolicy")
		if !indexed {
			errs = append(errs, field.Invalid(path, "", "requires indexed completion mode"))
		}
		if len(sp.Rules) == 0 {
			errs = append(errs, field.Required(path.Child("rules"), "at least one rule"))
		}
		for i, r := range sp.Rules {
			rp := path.Child("rules").Index(i)
			if r.SucceededIndexes == nil && r.SucceededCount == nil {
				errs = append(errs, field.Required(rp, "at least one of succeededCount or succeededIndexes must be specified"))
			}
			if r.SucceededCount != nil && *r.SucceededCount < 0 {
				errs = append(errs, field.Invalid(rp.Child("succeededCount"), *r.SucceededCount, "must be greater than or equal to 0"))
			}
		}
	}
	if pfp := s.PodFailurePolicy; pfp != nil {
		path := spec.Child("podFailurePolicy")
		if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			errs = append(errs, field.Invalid(spec.Child("template", "spec", "restartPolicy"), s.Template.Spec.RestartPolicy,
				"only \"Never\" is supported when podFailurePolicy is specified"))
		}
		for i, r := range pfp.Rules {
			rp := path.Child("rules").Index(i)
			switch r.Action {
			case batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyActionCount:
			case batchv1.PodFailurePolicyActionFailIndex:
				if s.BackoffLimitPerIndex == nil {
					errs = append(errs, field.Invalid(rp.Child("action"), r.Action, "requires the backoffLimitPerIndex to be set"))
				}
			default:
				errs = append(errs, field.NotSupported(rp.Child("action"), r.Action, []string{string(batchv1.PodFailurePolicyActionCount),
					string(batchv1.PodFailurePolicyActionFailIndex), string(batchv1.PodFailurePolicyActionFailJob), string(batchv1.PodFailurePolicyActionIgnore)}))
			}
			if (r.OnExitCodes == nil) == (len(r.OnPodConditions) == 0) {
				errs = append(errs, field.Invalid(rp, "", "specifying one of OnExitCodes and OnPodConditions is required"))
			}
			if ec := r.OnExitCodes; ec != nil {
				if ec.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn && ec.Operator != batchv1.PodFailurePolicyOnExitCodesOpNotIn {
					errs = append(errs, field.NotSupported(rp.Child("onExitCodes", "operator"), ec.Operator, []string{"In", "NotIn"}))
				}
				if len(ec.Values) == 0 {
					errs = append(errs, field.Required(rp.Child("onExitCodes", "values"), "at least one value is required"))
				}
				for k, v := range ec.Values {
					if ec.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0 {
						errs = append(errs, field.Invalid(rp.Child("onExitCodes", "values").Index(k), v, "must not be 0 for the In operator"))
					}
				}
			}
		}
	}
	return errs
}
