package cronjob

import (
	"fmt"
	"maps"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var controllerKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// jobName names the Job of one schedule time: the CronJob's name and the
// time in minutes since the epoch, so that every controller (or restart)
// asking for the same run asks for the same name.
func jobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// newJob builds the Job that runs cj at the scheduled time.
func newJob(cj *batchv1.CronJob, scheduled time.Time) (*batchv1.Job, error) {
	tz := ""
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	// Upstream writes the annotation in the CronJob's zone, UTC if none.
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", tz, err)
	}
	labels := maps.Clone(cj.Spec.JobTemplate.Labels)
	annotations := maps.Clone(cj.Spec.JobTemplate.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            jobName(cj, scheduled),
			Namespace:       cj.Namespace,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)},
		},
	}
	cj.Spec.JobTemplate.Spec.DeepCopyInto(&job.Spec)
	return job, nil
}

// finished reports whether the Job has completed or failed, and which.
func finished(j *batchv1.Job) (bool, batchv1.JobConditionType) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true, c.Type
		}
	}
	return false, ""
}

// sortByStartTime orders jobs oldest first: by start time, jobs that never
// started last, names breaking ties.
func sortByStartTime(jobs []*batchv1.Job) {
	sort.SliceStable(jobs, func(i, k int) bool {
		a, b := jobs[i].Status.StartTime, jobs[k].Status.StartTime
		switch {
		case a == nil && b == nil:
			return jobs[i].Name < jobs[k].Name
		case a == nil || b == nil:
			return b == nil
		case a.Equal(b):
			return jobs[i].Name < jobs[k].Name
		}
		return a.Before(b)
	})
}

func inActive(cj *batchv1.CronJob, uid types.UID) bool {
	for _, r := range cj.Status.Active {
		if r.UID == uid {
			return true
		}
	}
	return false
}

func inActiveByName(cj *batchv1.CronJob, name string) bool {
	for _, r := range cj.Status.Active {
		if r.Name == name {
			return true
		}
	}
	return false
}

func removeFromActive(cj *batchv1.CronJob, uid types.UID) {
	active := cj.Status.Active[:0:0]
	for _, r := range cj.Status.Active {
		if r.UID != uid {
			active = append(active, r)
		}
	}
	cj.Status.Active = active
}
