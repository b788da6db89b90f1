// Package cronjob is the registry strategy for batch/v1 cronjobs.
package cronjob

import (
	"context"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/batch/job"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// NewResource describes the cronjobs resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: batchv1.SchemeGroupVersion.WithResource("cronjobs"),
		Kind:                 "CronJob",
		SingularName:         "cronjob",
		ShortNames:           []string{"cj"},
		Categories:           []string{"all"},
		Namespaced:           true,
		Generation:           true,
		New:                  func() runtime.Object { return &batchv1.CronJob{} },
		NewList:              func() runtime.Object { return &batchv1.CronJobList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{Metadata: true},
		Table: &registry.TableColumns{
			Columns: append([]metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Schedule", Type: "string", Description: batchv1.CronJobSpec{}.SwaggerDoc()["schedule"]},
				{Name: "Timezone", Type: "string", Description: batchv1.CronJobSpec{}.SwaggerDoc()["timeZone"]},
				{Name: "Suspend", Type: "boolean", Description: batchv1.CronJobSpec{}.SwaggerDoc()["suspend"]},
				{Name: "Active", Type: "integer", Description: batchv1.CronJobStatus{}.SwaggerDoc()["active"]},
				{Name: "Last Schedule", Type: "string", Description: batchv1.CronJobStatus{}.SwaggerDoc()["lastScheduleTime"]},
				registry.AgeColumn,
			}, pod.TemplateColumnDefinitions(batchv1.JobSpec{}.SwaggerDoc()["selector"])...),
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				c := obj.(*batchv1.CronJob)
				last := "<none>"
				if c.Status.LastScheduleTime != nil {
					last = registry.Age(*c.Status.LastScheduleTime, now)
				}
				tz := "<none>"
				if c.Spec.TimeZone != nil {
					tz = *c.Spec.TimeZone
				}
				suspend := c.Spec.Suspend != nil && *c.Spec.Suspend
				containers, images := pod.TemplateColumns(&c.Spec.JobTemplate.Spec.Template)
				return []interface{}{c.Name, c.Spec.Schedule, tz, suspend, int64(len(c.Status.Active)), last, registry.Age(c.CreationTimestamp, now),
					containers, images, pod.SelectorString(c.Spec.JobTemplate.Spec.Selector)}
			},
		},
	}
}

type strategy struct{ registry.SpecStatusStrategy }

func (strategy) Default(obj runtime.Object) {
	c := obj.(*batchv1.CronJob)
	s := &c.Spec
	if s.ConcurrencyPolicy == "" {
		s.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if s.Suspend == nil {
		f := false
		s.Suspend = &f
	}
	if s.SuccessfulJobsHistoryLimit == nil {
		three := int32(3)
		s.SuccessfulJobsHistoryLimit = &three
	}
	if s.FailedJobsHistoryLimit == nil {
		one := int32(1)
		s.FailedJobsHistoryLimit = &one
	}
	pod.DefaultPodSpec(&s.JobTemplate.Spec.Template.Spec)
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validate(obj.(*batchv1.CronJob))
}

func (strategy) ValidateUpdate(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	return validate(obj.(*batchv1.CronJob))
}

// cronParser accepts the standard five fields and the @every/@hourly
// descriptors, as upstream's parser does.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func validate(c *batchv1.CronJob) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if len(c.Name) > 52 {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), c.Name, "must be no more than 52 characters"))
	}
	switch {
	case c.Spec.Schedule == "":
		errs = append(errs, field.Required(spec.Child("schedule"), ""))
	case strings.Contains(c.Spec.Schedule, "TZ=") || strings.Contains(c.Spec.Schedule, "CRON_TZ="):
		errs = append(errs, field.Invalid(spec.Child("schedule"), c.Spec.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	default:
		if _, err := cronParser.Parse(c.Spec.Schedule); err != nil {
			errs = append(errs, field.Invalid(spec.Child("schedule"), c.Spec.Schedule, err.Error()))
		}
	}
	if tz := c.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil || strings.EqualFold(*tz, "local") {
			errs = append(errs, field.Invalid(spec.Child("timeZone"), *tz, "unknown time zone "+*tz))
		}
	}
	switch c.Spec.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	default:
		errs = append(errs, field.NotSupported(spec.Child("concurrencyPolicy"), c.Spec.ConcurrencyPolicy, []string{string(batchv1.AllowConcurrent), string(batchv1.ForbidConcurrent), string(batchv1.ReplaceConcurrent)}))
	}
	if d := c.Spec.StartingDeadlineSeconds; d != nil && *d < 0 {
		errs = append(errs, field.Invalid(spec.Child("startingDeadlineSeconds"), *d, "must be greater than or equal to 0"))
	}
	for name, v := range map[string]*int32{"successfulJobsHistoryLimit": c.Spec.SuccessfulJobsHistoryLimit, "failedJobsHistoryLimit": c.Spec.FailedJobsHistoryLimit} {
		if v != nil && *v < 0 {
			errs = append(errs, field.Invalid(spec.Child(name), *v, "must be greater than or equal to 0"))
		}
	}
	errs = append(errs, job.ValidateJobTemplateSpec(&c.Spec.JobTemplate.Spec, spec.Child("jobTemplate", "spec"))...)
	return errs
}
