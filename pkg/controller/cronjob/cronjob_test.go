package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const (
	ns  = "default"
	key = ns + "/backup"
)

// created is when the test CronJobs were made: a Monday, half a minute
// past ten (UTC).
var created = time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)

// at is a time on the test day.
func at(hour, min int) time.Time { return time.Date(2026, 3, 2, hour, min, 0, 0, time.UTC) }

// justAfter is when a timed requeue for t fires.
func justAfter(t time.Time) time.Time { return t.Add(nextScheduleDelta) }

func newCronJob(schedule string, mods ...func(*batchv1.CronJob)) *batchv1.CronJob {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: ns, UID: "backup-uid", CreationTimestamp: metav1.NewTime(created)},
		Spec: batchv1.CronJobSpec{
			Schedule:                   schedule,
			ConcurrencyPolicy:          batchv1.AllowConcurrent,
			Suspend:                    ptr.To(false),
			SuccessfulJobsHistoryLimit: ptr.To[int32](3),
			FailedJobsHistoryLimit:     ptr.To[int32](1),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "backup"}, Annotations: map[string]string{"team": "storage"}},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](2),
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers:    []corev1.Container{{Name: "backup", Image: "busybox"}},
					}},
				},
			},
		},
	}
	for _, m := range mods {
		m(cj)
	}
	return cj
}

// ownedJob is a Job of cj's scheduled at t; cond is "" while it runs.
func ownedJob(cj *batchv1.CronJob, t time.Time, cond batchv1.JobConditionType) *batchv1.Job {
	j, err := newJob(cj, t)
	if err != nil {
		panic(err)
	}
	j.UID = types.UID(j.Name + "-uid")
	j.Status.StartTime = &metav1.Time{Time: t}
	if cond != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue}}
		if cond == batchv1.JobComplete {
			j.Status.CompletionTime = &metav1.Time{Time: t.Add(time.Minute)}
		}
	}
	return j
}

func activeRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: j.Namespace, Name: j.Name, UID: j.UID}
}

// fixture drives one Controller by hand: its caches are filled from the
// fake API server when the test says so (refresh), and sync is called
// directly.
type fixture struct {
	t       *testing.T
	client  *fake.Clientset
	factory informers.SharedInformerFactory
	clock   *testingclock.FakeClock
	c       *Controller
	rec     *record.FakeRecorder
}

func newFixture(t *testing.T, now time.Time, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	// The API server gives every new object a UID.
	client.PrependReactor("create", "jobs", func(a clienttesting.Action) (bool, runtime.Object, error) {
		j := a.(clienttesting.CreateAction).GetObject().(*batchv1.Job)
		j.UID = types.UID(j.Name + "-uid")
		return false, nil, nil
	})
	fx := &fixture{t: t, client: client, factory: informers.NewSharedInformerFactory(client, 0), clock: testingclock.NewFakeClock(now), rec: record.NewFakeRecorder(100)}
	c, err := New(client, fx.factory, fx.clock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = fx.rec
	fx.c = c
	t.Cleanup(c.queue.ShutDown)
	fx.refresh()
	return fx
}

// refresh makes the caches show what the API server holds, as the
// watches eventually would.
func (fx *fixture) refresh() {
	fx.t.Helper()
	ctx := context.Background()
	cjs, err := fx.client.BatchV1().CronJobs("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fx.t.Fatal(err)
	}
	jobs, err := fx.client.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fx.t.Fatal(err)
	}
	var cjObjs, jobObjs []any
	for i := range cjs.Items {
		cjObjs = append(cjObjs, &cjs.Items[i])
	}
	for i := range jobs.Items {
		jobObjs = append(jobObjs, &jobs.Items[i])
	}
	if err := fx.factory.Batch().V1().CronJobs().Informer().GetIndexer().Replace(cjObjs, ""); err != nil {
		fx.t.Fatal(err)
	}
	if err := fx.factory.Batch().V1().Jobs().Informer().GetIndexer().Replace(jobObjs, ""); err != nil {
		fx.t.Fatal(err)
	}
}

// sync runs one sync at now and returns its requeue delay; the API calls
// it made are in fx.client.Actions().
func (fx *fixture) sync(now time.Time) time.Duration {
	fx.t.Helper()
	fx.clock.SetTime(now)
	fx.client.ClearActions()
	d, err := fx.c.sync(context.Background(), key)
	if err != nil {
		fx.t.Fatalf("sync at %v: %v", now, err)
	}
	return d
}

// writes are the last sync's writes, as "verb resource[/subresource] name".
func (fx *fixture) writes() []string {
	var out []string
	for _, a := range fx.client.Actions() {
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		switch a := a.(type) {
		case clienttesting.CreateAction: // also updates
			out = append(out, fmt.Sprintf("%s %s %s", a.GetVerb(), res, a.GetObject().(metav1.Object).GetName()))
		case clienttesting.DeleteAction:
			out = append(out, fmt.Sprintf("delete %s %s", res, a.GetName()))
		}
	}
	return out
}

// events drains the recorded events' reasons.
func (fx *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-fx.rec.Events:
			out = append(out, strings.Fields(e)[1])
		default:
			return out
		}
	}
}

func (fx *fixture) cronJob() *batchv1.CronJob {
	fx.t.Helper()
	cj, err := fx.client.BatchV1().CronJobs(ns).Get(context.Background(), "backup", metav1.GetOptions{})
	if err != nil {
		fx.t.Fatal(err)
	}
	return cj
}

func (fx *fixture) jobNames() []string {
	fx.t.Helper()
	l, err := fx.client.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		fx.t.Fatal(err)
	}
	var out []string
	for _, j := range l.Items {
		out = append(out, j.Name)
	}
	slices.Sort(out)
	return out
}

func (fx *fixture) expect(what string, got, want any) {
	fx.t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		fx.t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

func name(t time.Time) string { return fmt.Sprintf("backup-%d", t.Unix()/60) }

func TestOneJobPerScheduleTime(t *testing.T) {
	fx := newFixture(t, created, newCronJob("0 * * * *"))

	// Before the first time: nothing to do but wait for it.
	fx.expect("requeue", fx.sync(at(10, 30)), 30*time.Minute+nextScheduleDelta)
	fx.expect("writes", fx.writes(), []string(nil))

	// At 11:00 the 11:00 Job is made and the CronJob wakes for 12:00.
	fx.expect("requeue", fx.sync(justAfter(at(11, 0))), time.Hour)
	first := name(at(11, 0))
	fx.expect("writes", fx.writes(), []string{"create jobs " + first, "update cronjobs/status backup"})
	fx.expect("events", fx.events(), []string{"SuccessfulCreate"})
	st := fx.cronJob().Status
	fx.expect("lastScheduleTime", st.LastScheduleTime.Time, at(11, 0))
	fx.expect("active", st.Active, []corev1.ObjectReference{{Kind: "Job", APIVersion: "batch/v1", Namespace: ns, Name: first, UID: types.UID(first + "-uid")}})

	// The caches have not seen the new Job or status yet: the same
	// schedule time is asked for again, and the name keeps it to one Job.
	// (The status write repeats the lost-update repair; against a real
	// API server the stale resourceVersion makes it conflict and retry.)
	fx.sync(justAfter(at(11, 0)))
	fx.expect("writes with stale caches", fx.writes(), []string{"create jobs " + first, "update cronjobs/status backup"})
	fx.expect("events with stale caches", fx.events(), []string(nil))
	fx.expect("jobs with stale caches", fx.jobNames(), []string{first})

	// Once the caches caught up, syncs in the same hour do nothing.
	fx.refresh()
	fx.sync(at(11, 30))
	fx.expect("writes later in the hour", fx.writes(), []string(nil))
	fx.expect("events later in the hour", fx.events(), []string(nil))

	// At 12:00 (Allow) the second run starts beside the first.
	fx.sync(justAfter(at(12, 0)))
	second := name(at(12, 0))
	fx.expect("writes at 12:00", fx.writes(), []string{"create jobs " + second, "update cronjobs/status backup"})
	fx.expect("jobs", fx.jobNames(), []string{first, second})
	fx.expect("active", len(fx.cronJob().Status.Active), 2)
}

func TestJobFromTemplate(t *testing.T) {
	cj := newCronJob("*/15 * * * *")
	fx := newFixture(t, created, cj)
	fx.sync(at(10, 15))
	j, err := fx.client.BatchV1().Jobs(ns).Get(context.Background(), name(at(10, 15)), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fx.expect("name", j.Name, fmt.Sprintf("backup-%d", at(10, 15).Unix()/60))
	fx.expect("labels", j.Labels, map[string]string{"app": "backup"})
	fx.expect("annotations", j.Annotations, map[string]string{"team": "storage", "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-03-02T10:15:00Z"})
	fx.expect("owner", j.OwnerReferences, []metav1.OwnerReference{{
		APIVersion: "batch/v1", Kind: "CronJob", Name: "backup", UID: "backup-uid", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}})
	fx.expect("spec", j.Spec, cj.Spec.JobTemplate.Spec)
	// The template is the CronJob's, not the Job's to share.
	if cj.Spec.JobTemplate.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "" {
		t.Error("the CronJob's template was modified")
	}
}

func TestAlreadyExists(t *testing.T) {
	cj := newCronJob("0 * * * *")
	for _, tc := range []struct {
		name       string
		existing   *batchv1.Job
		wantActive int
	}{
		// Made by an earlier sync whose status update was lost: adopted
		// into the active list, not made again.
		{"ours", ownedJob(cj, at(11, 0), ""), 1},
		// Someone else's Job of that name: left alone.
		{"someone else's", &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name(at(11, 0)), Namespace: ns, UID: "other"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, created, cj, tc.existing)
			// The cache has not seen the Job.
			if err := fx.factory.Batch().V1().Jobs().Informer().GetIndexer().Replace(nil, ""); err != nil {
				t.Fatal(err)
			}
			fx.sync(justAfter(at(11, 0)))
			fx.expect("events", fx.events(), []string(nil))
			fx.expect("jobs", fx.jobNames(), []string{name(at(11, 0))})
			fx.expect("active", len(fx.cronJob().Status.Active), tc.wantActive)
		})
	}
}

func TestForbid(t *testing.T) {
	cj := newCronJob("0 * * * *", func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent })
	running := ownedJob(cj, at(11, 0), "")
	cj.Status.Active = []corev1.ObjectReference{activeRef(running)}
	cj.Status.LastScheduleTime = &metav1.Time{Time: at(11, 0)}
	fx := newFixture(t, at(11, 0), cj, running)

	fx.expect("requeue", fx.sync(justAfter(at(12, 0))), time.Hour)
	fx.expect("writes while running", fx.writes(), []string(nil))
	fx.expect("events while running", fx.events(), []string{"JobAlreadyActive"})

	// When the running Job finishes, the skipped 12:00 run starts late
	// (no startingDeadlineSeconds), as upstream does.
	done := ownedJob(cj, at(11, 0), batchv1.JobComplete)
	if _, err := fx.client.BatchV1().Jobs(ns).UpdateStatus(context.Background(), done, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	fx.refresh()
	fx.sync(at(12, 10))
	fx.expect("writes after it finished", fx.writes(), []string{"create jobs " + name(at(12, 0)), "update cronjobs/status backup"})
	fx.expect("events after it finished", fx.events(), []string{"SawCompletedJob", "SuccessfulCreate"})
	st := fx.cronJob().Status
	fx.expect("active", st.Active[0].Name, name(at(12, 0)))
	fx.expect("lastSuccessfulTime", st.LastSuccessfulTime.Time, at(11, 1))
}

func TestReplace(t *testing.T) {
	cj := newCronJob("0 * * * *", func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent })
	running := ownedJob(cj, at(11, 0), "")
	cj.Status.Active = []corev1.ObjectReference{activeRef(running)}
	cj.Status.LastScheduleTime = &metav1.Time{Time: at(11, 0)}
	fx := newFixture(t, at(11, 0), cj, running)

	fx.sync(justAfter(at(12, 0)))
	fx.expect("writes", fx.writes(), []string{"delete jobs " + running.Name, "create jobs " + name(at(12, 0)), "update cronjobs/status backup"})
	fx.expect("events", fx.events(), []string{"SuccessfulDelete", "SuccessfulCreate"})
	for _, a := range fx.client.Actions() {
		if d, ok := a.(clienttesting.DeleteAction); ok {
			fx.expect("propagation", d.GetDeleteOptions().PropagationPolicy, ptr.To(metav1.DeletePropagationBackground))
		}
	}
	fx.expect("jobs", fx.jobNames(), []string{name(at(12, 0))})
	st := fx.cronJob().Status
	fx.expect("active", len(st.Active), 1)
	fx.expect("active job", st.Active[0].Name, name(at(12, 0)))
}

func TestSuspended(t *testing.T) {
	fx := newFixture(t, created, newCronJob("*/1 * * * *", func(cj *batchv1.CronJob) { cj.Spec.Suspend = ptr.To(true) }))
	fx.expect("requeue", fx.sync(at(12, 0)), time.Duration(0))
	fx.expect("writes", fx.writes(), []string(nil))
	fx.expect("events", fx.events(), []string(nil))
}

func TestStartingDeadline(t *testing.T) {
	cj := newCronJob("0 * * * *", func(cj *batchv1.CronJob) {
		cj.Spec.StartingDeadlineSeconds = ptr.To[int64](120)
		cj.Status.LastScheduleTime = &metav1.Time{Time: at(10, 0)}
	})

	// 11:00 was missed by five minutes, more than the two allowed.
	fx := newFixture(t, at(10, 0), cj)
	fx.expect("requeue", fx.sync(at(11, 5)), 55*time.Minute+nextScheduleDelta)
	fx.expect("writes when too late", fx.writes(), []string(nil))
	fx.expect("events when too late", fx.events(), []string{"MissSchedule"})

	// One minute late is within the deadline.
	fx = newFixture(t, at(10, 0), cj.DeepCopy())
	fx.sync(at(11, 1))
	fx.expect("writes when late", fx.writes(), []string{"create jobs " + name(at(11, 0)), "update cronjobs/status backup"})
}

func TestTooManyMissed(t *testing.T) {
	// Three hours of minutes missed: only the latest one is run.
	fx := newFixture(t, created, newCronJob("*/1 * * * *"))
	fx.sync(at(13, 0).Add(30 * time.Second))
	fx.expect("writes", fx.writes(), []string{"create jobs " + name(at(13, 0)), "update cronjobs/status backup"})
	fx.expect("events", fx.events(), []string{"TooManyMissedTimes", "SuccessfulCreate"})

	// A deadline narrows what counts as missed.
	fx = newFixture(t, created, newCronJob("*/1 * * * *", func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = ptr.To[int64](300) }))
	fx.sync(at(13, 0).Add(30 * time.Second))
	fx.expect("events with a deadline", fx.events(), []string{"SuccessfulCreate"})
}

func TestHistoryLimits(t *testing.T) {
	cj := newCronJob("0 * * * *", func(cj *batchv1.CronJob) {
		cj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](2)
		cj.Status.LastScheduleTime = &metav1.Time{Time: at(16, 0)}
	})
	objs := []runtime.Object{cj}
	// Succeeded at 10, 12, 13, 15; failed at 11, 14; 16 is running.
	for h, cond := range map[int]batchv1.JobConditionType{10: batchv1.JobComplete, 11: batchv1.JobFailed, 12: batchv1.JobComplete, 13: batchv1.JobComplete, 14: batchv1.JobFailed, 15: batchv1.JobComplete, 16: ""} {
		j := ownedJob(cj, at(h, 0), cond)
		objs = append(objs, j)
		if cond == "" {
			cj.Status.Active = []corev1.ObjectReference{activeRef(j)}
		}
	}
	// Someone else's finished Job is not ours to delete.
	objs = append(objs, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns, UID: "unrelated"},
		Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}})
	fx := newFixture(t, at(16, 0), objs...)

	fx.sync(at(16, 30))
	var deleted []string
	for _, a := range fx.client.Actions() {
		if d, ok := a.(clienttesting.DeleteAction); ok {
			deleted = append(deleted, d.GetName())
			fx.expect("propagation", d.GetDeleteOptions().PropagationPolicy, ptr.To(metav1.DeletePropagationBackground))
		}
	}
	slices.Sort(deleted)
	fx.expect("deleted", deleted, []string{name(at(10, 0)), name(at(11, 0)), name(at(12, 0))})
	fx.expect("events", fx.events(), []string{"SuccessfulDelete", "SuccessfulDelete", "SuccessfulDelete"})
	fx.expect("jobs", fx.jobNames(), []string{name(at(13, 0)), name(at(14, 0)), name(at(15, 0)), name(at(16, 0)), "unrelated"})
	st := fx.cronJob().Status
	fx.expect("lastSuccessfulTime", st.LastSuccessfulTime.Time, at(15, 1))
	fx.expect("active", len(st.Active), 1)
}

func TestTimeZone(t *testing.T) {
	// 09:00 in Tokyo is midnight UTC.
	fx := newFixture(t, created, newCronJob("0 9 * * *", func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptr.To("Asia/Tokyo") }))
	fx.expect("requeue", fx.sync(at(23, 59)), time.Minute+nextScheduleDelta)
	fx.expect("writes before", fx.writes(), []string(nil))

	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	fx.expect("requeue", fx.sync(justAfter(midnight)), 24*time.Hour)
	fx.expect("writes at midnight UTC", fx.writes(), []string{"create jobs " + name(midnight), "update cronjobs/status backup"})
	j, err := fx.client.BatchV1().Jobs(ns).Get(context.Background(), name(midnight), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fx.expect("scheduled timestamp", j.Annotations[batchv1.CronJobScheduledTimestampAnnotation], "2026-03-03T09:00:00+09:00")
}

func TestBadSchedules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		schedule string
		tz       *string
		events   []string
	}{
		{"unknown time zone", "0 * * * *", ptr.To("Mars/Olympus_Mons"), []string{"UnknownTimeZone"}},
		{"unparseable", "every morning", nil, []string{"UnparseableSchedule"}},
		{"zone without schedule", "TZ=UTC", nil, []string{"UnsupportedSchedule", "UnparseableSchedule"}},
		{"never fires", "0 0 30 2 *", nil, []string{"InvalidSchedule"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, created, newCronJob(tc.schedule, func(cj *batchv1.CronJob) { cj.Spec.TimeZone = tc.tz }))
			// No error and no requeue: nothing changes until the spec does.
			fx.expect("requeue", fx.sync(at(12, 0)), time.Duration(0))
			fx.expect("writes", fx.writes(), []string(nil))
			fx.expect("events", fx.events(), tc.events)
		})
	}
}

func TestZoneInSchedule(t *testing.T) {
	// Refused by validation, but a stored one still runs, with a warning,
	// as upstream.
	fx := newFixture(t, created, newCronJob("CRON_TZ=Asia/Tokyo 0 9 * * *"))
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	fx.sync(justAfter(midnight))
	fx.expect("writes", fx.writes(), []string{"create jobs " + name(midnight), "update cronjobs/status backup"})
	fx.expect("events", fx.events(), []string{"UnsupportedSchedule", "SuccessfulCreate"})
}

func TestMissingAndUnexpectedJobs(t *testing.T) {
	cj := newCronJob("0 * * * *")
	gone := ownedJob(cj, at(10, 0), "")
	unlisted := ownedJob(cj, at(11, 0), "")
	cj.Status.Active = []corev1.ObjectReference{activeRef(gone)}
	cj.Status.LastScheduleTime = &metav1.Time{Time: at(11, 0)}
	fx := newFixture(t, at(11, 0), cj, unlisted)

	fx.sync(at(11, 30))
	fx.expect("events", fx.events(), []string{"UnexpectedJob", "MissingJob"})
	fx.expect("writes", fx.writes(), []string{"update cronjobs/status backup"})
	fx.expect("active", len(fx.cronJob().Status.Active), 0)
}

func TestActiveJobNotCachedYet(t *testing.T) {
	// The Job cache lags the active list: the API server is asked, and
	// the Job stays active.
	cj := newCronJob("0 * * * *")
	running := ownedJob(cj, at(11, 0), "")
	cj.Status.Active = []corev1.ObjectReference{activeRef(running)}
	cj.Status.LastScheduleTime = &metav1.Time{Time: at(11, 0)}
	fx := newFixture(t, at(11, 0), cj, running)
	if err := fx.factory.Batch().V1().Jobs().Informer().GetIndexer().Replace(nil, ""); err != nil {
		t.Fatal(err)
	}
	fx.sync(at(11, 30))
	fx.expect("events", fx.events(), []string(nil))
	fx.expect("writes", fx.writes(), []string(nil))
}

func TestStatusCacheLagsJobCache(t *testing.T) {
	// The Job is cached but the status that lists it is not: the API
	// server's CronJob is used, so no UnexpectedJob and no second run.
	cj := newCronJob("0 * * * *")
	fx := newFixture(t, created, cj)
	fx.sync(justAfter(at(11, 0)))
	fx.events()
	if err := fx.factory.Batch().V1().Jobs().Informer().GetIndexer().Add(ownedJob(cj, at(11, 0), "")); err != nil {
		t.Fatal(err)
	}
	fx.sync(at(11, 1))
	fx.expect("events", fx.events(), []string(nil))
	fx.expect("writes", fx.writes(), []string(nil))
}

func TestDeletedCronJob(t *testing.T) {
	fx := newFixture(t, created)
	fx.expect("requeue", fx.sync(at(12, 0)), time.Duration(0))
	fx.expect("writes", fx.writes(), []string(nil))

	// Being deleted: status only, no new runs.
	cj := newCronJob("*/1 * * * *", func(cj *batchv1.CronJob) {
		cj.DeletionTimestamp = &metav1.Time{Time: at(11, 0)}
		cj.Finalizers = []string{"foregroundDeletion"}
	})
	fx = newFixture(t, created, cj)
	fx.expect("requeue", fx.sync(at(12, 0)), time.Duration(0))
	fx.expect("writes", fx.writes(), []string(nil))
}

func TestJobEventsWakeTheirCronJob(t *testing.T) {
	cj := newCronJob("0 * * * *")
	fx := newFixture(t, created, cj)
	mine := ownedJob(cj, at(11, 0), "")
	stranger := ownedJob(cj, at(11, 0), "")
	stranger.OwnerReferences[0].UID = "someone-else"
	orphan := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: ns}}

	for _, j := range []*batchv1.Job{stranger, orphan} {
		fx.c.onJob(nil, j)
	}
	fx.expect("queued for others' jobs", fx.c.queue.Len(), 0)
	fx.c.onJob(nil, mine)
	fx.expect("queued", fx.c.queue.Len(), 1)
	got, _ := fx.c.queue.Get()
	fx.expect("key", got, key)
	fx.c.queue.Done(got)

	// A schedule edit moves the wake-up rather than syncing now.
	edited := cj.DeepCopy()
	edited.Spec.Schedule = "30 * * * *"
	fx.clock.SetTime(at(10, 40))
	fx.c.onCronJobUpdate(cj, edited)
	fx.expect("queued now after a schedule edit", fx.c.queue.Len(), 0)
	fx.clock.SetTime(justAfter(at(11, 30)))
	waitFor(t, func() bool { return fx.c.queue.Len() == 1 })
}

// waitFor polls cond (for effects of other goroutines, such as the work
// queue's timers) for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
