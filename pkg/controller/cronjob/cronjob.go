// Package cronjob runs batch/v1 CronJobs as upstream's controller (v2)
// does: at each time of spec.schedule (five cron fields or a descriptor,
// in spec.timeZone or else the controller's zone) it creates one Job
// named after the CronJob and the scheduled minute, so a retry or a
// restart can never run the same time twice. The newest missed time is
// run late unless it is older than startingDeadlineSeconds;
// concurrencyPolicy decides whether a run may overlap (Allow), is skipped
// (Forbid) or replaces the running Jobs (Replace); suspend stops new runs.
// Status (active Jobs, lastScheduleTime, lastSuccessfulTime) goes through
// the status subresource, finished Jobs beyond the history limits are
// deleted, and each CronJob is requeued for its next schedule time.
package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/skiff/skiff/pkg/controller/recorder"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/reference"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controller/workers"
)

// Defaults of the history limits, as documented on the API (the registry
// sets them; a CronJob built without it gets them here too).
const (
	defaultSuccessfulJobsHistoryLimit = 3
	defaultFailedJobsHistoryLimit     = 1
)

// Controller runs CronJobs.
type Controller struct {
	client   kubernetes.Interface
	cronJobs batchlisters.CronJobLister
	jobs     batchlisters.JobLister
	queue    workqueue.TypedRateLimitingInterface[string]
	clock    clock.Clock
	recorder record.EventRecorder
	log      *slog.Logger
}

// New returns a Controller fed by f's CronJob and Job informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.Clock, log *slog.Logger) (*Controller, error) {
	qcfg := workqueue.TypedRateLimitingQueueConfig[string]{Name: "cronjob"}
	if tc, ok := clk.(clock.WithTicker); ok {
		// Timed requeues follow the same clock as the schedule.
		qcfg.Clock = tc
	}
	c := &Controller{
		client: client, cronJobs: f.Batch().V1().CronJobs().Lister(), jobs: f.Batch().V1().Jobs().Lister(),
		clock: clk, log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), qcfg),
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := f.Batch().V1().CronJobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: c.onCronJobUpdate, DeleteFunc: enqueue,
	}); err != nil {
		return nil, fmt.Errorf("cronjob informer: %w", err)
	}
	if _, err := f.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.onJob(nil, obj.(*batchv1.Job)) },
		UpdateFunc: func(old, obj any) {
			if o, j := old.(*batchv1.Job), obj.(*batchv1.Job); o.ResourceVersion != j.ResourceVersion {
				c.onJob(o, j)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if j, ok := obj.(*batchv1.Job); ok {
				c.onJob(nil, j)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("job informer: %w", err)
	}
	return c, nil
}

// onCronJobUpdate syncs an updated CronJob now, except that a new
// schedule or zone only moves its next wake-up (as upstream), so that
// editing the schedule does not run the time the new schedule just
// passed.
func (c *Controller) onCronJobUpdate(old, obj any) {
	o, cj := old.(*batchv1.CronJob), obj.(*batchv1.CronJob)
	key, err := cache.MetaNamespaceKeyFunc(cj)
	if err != nil {
		return
	}
	if o.Spec.Schedule != cj.Spec.Schedule || !ptr.Equal(o.Spec.TimeZone, cj.Spec.TimeZone) {
		if loc, err := c.location(cj); err == nil {
			if s, err := parseSchedule(cj.Spec.Schedule, loc); err == nil {
				if d, ok := untilNext(s, earliestTime(cj), c.clock.Now()); ok {
					c.queue.AddAfter(key, d)
					return
				}
			}
		}
		// A bad schedule or zone: the sync reports it.
	}
	c.queue.Add(key)
}

// onJob wakes the CronJob that controls the Job (and, if the controller
// changed, the one that did).
func (c *Controller) onJob(old, j *batchv1.Job) {
	if key, ok := c.controllerKey(j); ok {
		c.queue.Add(key)
	}
	if old != nil && !reflect.DeepEqual(metav1.GetControllerOf(old), metav1.GetControllerOf(j)) {
		if key, ok := c.controllerKey(old); ok {
			c.queue.Add(key)
		}
	}
}

// controllerKey returns the key of the CronJob controlling j, if it
// exists.
func (c *Controller) controllerKey(j *batchv1.Job) (string, bool) {
	ref := metav1.GetControllerOf(j)
	if ref == nil || ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
		return "", false
	}
	cj, err := c.cronJobs.CronJobs(j.Namespace).Get(ref.Name)
	if err != nil || cj.UID != ref.UID {
		return "", false
	}
	return j.Namespace + "/" + ref.Name, true
}

// Run starts the recorder and n workers and runs until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, "cronjob-controller")
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.syncAndRequeue, c.log)
}

// syncAndRequeue syncs key and schedules its next wake-up.
func (c *Controller) syncAndRequeue(ctx context.Context, key string) error {
	next, err := c.sync(ctx, key)
	if err != nil {
		return err
	}
	if next > 0 {
		c.queue.AddAfter(key, next)
	}
	return nil
}

// sync reconciles one CronJob and returns how long until it must be
// synced again for its next schedule time (0: only when something
// changes, e.g. it is suspended or its schedule is invalid).
func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, err
	}
	cached, err := c.cronJobs.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	all, err := c.jobs.Jobs(ns).List(labels.Everything())
	if err != nil {
		return 0, err
	}
	var jobs []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == cached.UID {
			jobs = append(jobs, j)
		}
	}
	cj, err := c.freshest(ctx, cached, jobs)
	if err != nil || cj == nil {
		return 0, err
	}
	before := cj.Status.DeepCopy()
	next, syncErr := c.reconcile(ctx, cj, jobs)
	c.cleanupHistory(ctx, cj, jobs)
	if !equality.Semantic.DeepEqual(before, &cj.Status) {
		if _, err := c.client.BatchV1().CronJobs(ns).UpdateStatus(ctx, cj, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return 0, nil
			}
			return 0, fmt.Errorf("update status of cronjob %s: %w", key, err)
		}
	}
	return next, syncErr
}

// freshest returns a copy of the CronJob to work on. When it controls a
// running Job its status does not list, the cached CronJob may predate
// the status update that listed it, so the API server's copy is used.
// It returns nil if the CronJob is gone.
func (c *Controller) freshest(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) (*batchv1.CronJob, error) {
	for _, j := range jobs {
		if done, _ := finished(j); done || inActive(cj, j.UID) {
			continue
		}
		fresh, err := c.client.BatchV1().CronJobs(cj.Namespace).Get(ctx, cj.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("get cronjob %s/%s: %w", cj.Namespace, cj.Name, err)
		case fresh.UID != cj.UID:
			return nil, nil
		}
		return fresh, nil
	}
	return cj.DeepCopy(), nil
}

// reconcile brings cj's status up to date with its Jobs and starts the
// run that is due, if any; it edits cj's status in place and returns the
// delay until the next schedule time (0 for none).
func (c *Controller) reconcile(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) (time.Duration, error) {
	now := c.clock.Now()
	if err := c.trackJobs(ctx, cj, jobs); err != nil {
		return 0, err
	}
	if cj.DeletionTimestamp != nil {
		return 0, nil
	}
	loc, err := c.location(cj)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *cj.Spec.TimeZone, err)
		return 0, nil
	}
	if ptr.Deref(cj.Spec.Suspend, false) {
		return 0, nil
	}
	if strings.Contains(cj.Spec.Schedule, "TZ") {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnsupportedSchedule", "CRON_TZ or TZ used in schedule %q is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", cj.Spec.Schedule)
	}
	sched, err := parseSchedule(cj.Spec.Schedule, loc)
	if err != nil {
		// A user error: nothing to retry until the spec changes.
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	earliest := earliestTime(cj)
	scheduled, err := mostRecent(sched, earliest, now)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "InvalidSchedule", "invalid schedule: %s : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	next, _ := untilNext(sched, earliest, now)
	if scheduled == nil {
		return next, nil
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		deadline := now.Add(-time.Duration(*d) * time.Second)
		if scheduled.Before(deadline) {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", scheduled.UTC().Format(time.RFC1123Z))
			return next, nil
		}
		if deadline.After(earliest) {
			earliest = deadline
		}
	}
	if missedCount(sched, earliest, now) > tooManyMissed {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
	}
	if inActiveByName(cj, jobName(cj, *scheduled)) || cj.Status.LastScheduleTime.Equal(&metav1.Time{Time: *scheduled}) {
		return next, nil
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(cj.Status.Active) > 0 {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return next, nil
		}
	case batchv1.ReplaceConcurrent:
		if err := c.replaceActive(ctx, cj); err != nil {
			return 0, err
		}
	}
	if err := c.start(ctx, cj, *scheduled); err != nil {
		return 0, err
	}
	return next, nil
}

// trackJobs drops finished and vanished Jobs from the active list and
// records the latest successful completion.
func (c *Controller) trackJobs(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	seen := make(map[types.UID]bool, len(jobs))
	for _, j := range jobs {
		seen[j.UID] = true
		done, cond := finished(j)
		switch {
		case !done && !inActive(cj, j.UID):
			// Created by a controller that crashed before recording it, or
			// by someone else; upstream reports it and leaves it alone.
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case done && inActive(cj, j.UID):
			removeFromActive(cj, j.UID)
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, cond)
		}
		if cond == batchv1.JobComplete && j.Status.CompletionTime != nil &&
			(cj.Status.LastSuccessfulTime == nil || j.Status.CompletionTime.After(cj.Status.LastSuccessfulTime.Time)) {
			cj.Status.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
		}
	}
	for _, r := range cj.Status.Active {
		if seen[r.UID] {
			continue
		}
		// Ask the API server: the Job cache may simply be behind.
		j, err := c.client.BatchV1().Jobs(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || err == nil && j.UID != r.UID:
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", r.Name)
			removeFromActive(cj, r.UID)
		case err != nil:
			return fmt.Errorf("get job %s/%s: %w", r.Namespace, r.Name, err)
		}
	}
	return nil
}

// replaceActive deletes the running Jobs (Replace policy).
func (c *Controller) replaceActive(ctx context.Context, cj *batchv1.CronJob) error {
	for _, r := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
		j, err := c.client.BatchV1().Jobs(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			removeFromActive(cj, r.UID)
			continue
		case err != nil:
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedGet", "Get job: %v", err)
			return fmt.Errorf("get job %s/%s: %w", r.Namespace, r.Name, err)
		}
		if err := c.deleteJob(ctx, cj, j); err != nil {
			return fmt.Errorf("replace job %s/%s: %w", j.Namespace, j.Name, err)
		}
	}
	return nil
}

// start creates the Job of the scheduled time and records it as active.
func (c *Controller) start(ctx context.Context, cj *batchv1.CronJob, scheduled time.Time) error {
	want, err := newJob(cj, scheduled)
	if err != nil {
		return err
	}
	job, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, want, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		// Made by an earlier sync whose status update was lost or is not
		// cached yet: the name is the lock, so record it, never make it
		// again.
		job, err = c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get job %s/%s: %w", want.Namespace, want.Name, err)
		}
		if !metav1.IsControlledBy(job, cj) || inActive(cj, job.UID) {
			return nil
		}
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return fmt.Errorf("create job %s/%s: %w", want.Namespace, want.Name, err)
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return fmt.Errorf("create job %s/%s: %w", want.Namespace, want.Name, err)
	default:
		c.log.Debug("created job", "cronjob", cj.Namespace+"/"+cj.Name, "job", job.Name)
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", job.Name)
	}
	ref, err := reference.GetReference(scheme.Scheme, job)
	if err != nil {
		return fmt.Errorf("reference to job %s/%s: %w", job.Namespace, job.Name, err)
	}
	cj.Status.Active = append(cj.Status.Active, *ref)
	cj.Status.LastScheduleTime = &metav1.Time{Time: scheduled}
	return nil
}

// cleanupHistory deletes the oldest finished Jobs beyond the history
// limits. A failed deletion is reported and retried at the next sync.
func (c *Controller) cleanupHistory(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) {
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch _, cond := finished(j); cond {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	c.removeOldest(ctx, cj, succeeded, ptr.Deref(cj.Spec.SuccessfulJobsHistoryLimit, defaultSuccessfulJobsHistoryLimit))
	c.removeOldest(ctx, cj, failed, ptr.Deref(cj.Spec.FailedJobsHistoryLimit, defaultFailedJobsHistoryLimit))
}

func (c *Controller) removeOldest(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, keep int32) {
	n := len(jobs) - int(max(keep, 0))
	if n <= 0 {
		return
	}
	jobs = append([]*batchv1.Job(nil), jobs...)
	sortByStartTime(jobs)
	for _, j := range jobs[:n] {
		if j.DeletionTimestamp != nil {
			continue
		}
		if err := c.deleteJob(ctx, cj, j); err != nil {
			c.log.Warn("history cleanup", "cronjob", cj.Namespace+"/"+cj.Name, "err", err)
		}
	}
}

// deleteJob deletes a Job and its pods (in the background, as upstream)
// and drops it from the active list.
func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, j *batchv1.Job) error {
	err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &j.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Error deleting job %s: %v", j.Name, err)
		return fmt.Errorf("delete job %s/%s: %w", j.Namespace, j.Name, err)
	}
	removeFromActive(cj, j.UID)
	if err == nil {
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", j.Name)
	}
	return nil
}

// location is the zone the schedule runs in: spec.timeZone, else the
// controller's own zone (the zone of its clock's readings), as upstream
// uses kube-controller-manager's local zone.
func (c *Controller) location(cj *batchv1.CronJob) (*time.Location, error) {
	if cj.Spec.TimeZone == nil {
		return c.clock.Now().Location(), nil
	}
	return time.LoadLocation(*cj.Spec.TimeZone)
}

// earliestTime is when the CronJob last ran, or was created if never.
func earliestTime(cj *batchv1.CronJob) time.Time {
	if cj.Status.LastScheduleTime != nil {
		return cj.Status.LastScheduleTime.Time
	}
	return cj.CreationTimestamp.Time
}
