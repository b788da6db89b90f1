package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// world is a fake API server with the controller's caches refreshed from
// it after every change, so each sync sees the latest state.
type world struct {
	t      *testing.T
	client *fake.Clientset
	f      informers.SharedInformerFactory
	clock  *clocktesting.FakeClock
	c      *Controller
	seq    atomic.Int64
	// failPatches makes pod patches fail while set.
	failPatches atomic.Bool
}

func newWorld(t *testing.T, j *batchv1.Job) *world {
	t.Helper()
	w := &world{t: t, client: fake.NewClientset(j), clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	w.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		n := w.seq.Add(1)
		p.Name = fmt.Sprintf("%s%d", p.GenerateName, n)
		p.UID = types.UID(fmt.Sprintf("pod-uid-%d", n))
		p.CreationTimestamp = metav1.NewTime(w.clock.Now())
		return false, nil, nil
	})
	w.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if w.failPatches.Load() {
			return true, nil, errors.New("injected patch failure")
		}
		return false, nil, nil
	})
	w.restart()
	return w
}

// restart replaces the controller with a fresh one (no memory), as after
// a crash.
func (w *world) restart() {
	w.f = informers.NewSharedInformerFactory(w.client, 0)
	c, err := New(w.client, w.f, w.clock, slog.New(slog.DiscardHandler))
	if err != nil {
		w.t.Fatal(err)
	}
	c.recorder = record.NewFakeRecorder(1000)
	w.c = c
}

// refresh copies the fake API server's pods and jobs into the caches.
func (w *world) refresh() {
	ctx := context.Background()
	pods, err := w.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var objs []any
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	if err := w.f.Core().V1().Pods().Informer().GetIndexer().Replace(objs, ""); err != nil {
		w.t.Fatal(err)
	}
	jobs, err := w.client.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	objs = nil
	for i := range jobs.Items {
		objs = append(objs, &jobs.Items[i])
	}
	if err := w.f.Batch().V1().Jobs().Informer().GetIndexer().Replace(objs, ""); err != nil {
		w.t.Fatal(err)
	}
	// The informer would have shown every creation and deletion.
	w.c.exp.Forget("default/j")
	w.c.mu.Lock()
	w.c.finalizersRemoved = map[string]map[types.UID]bool{}
	w.c.mu.Unlock()
}

func (w *world) sync() error {
	w.t.Helper()
	w.refresh()
	err := w.c.sync(context.Background(), "default/j")
	w.refresh()
	return err
}

func (w *world) mustSync() {
	w.t.Helper()
	if err := w.sync(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) job() *batchv1.Job {
	j, err := w.client.BatchV1().Jobs("default").Get(context.Background(), "j", metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return j
}

func (w *world) pods() []corev1.Pod {
	l, err := w.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return l.Items
}

func (w *world) running() []corev1.Pod {
	var out []corev1.Pod
	for _, p := range w.pods() {
		if p.Status.Phase == "" || p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}

// finish marks a pod succeeded or failed at the current time.
func (w *world) finish(p corev1.Pod, phase corev1.PodPhase) {
	w.t.Helper()
	p.Status.Phase = phase
	code := int32(0)
	if phase == corev1.PodFailed {
		code = 1
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, FinishedAt: metav1.NewTime(w.clock.Now()),
	}}}}
	if _, err := w.client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), &p, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func newJob(completions, parallelism *int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "default", UID: "job-uid"},
		Spec: batchv1.JobSpec{
			Completions: completions, Parallelism: parallelism, BackoffLimit: ptr.To[int32](6),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": "j"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": "j"}},
				Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

func condition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == typ {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func TestCompletionsWithParallelism(t *testing.T) {
	w := newWorld(t, newJob(ptr.To[int32](5), ptr.To[int32](2)))
	for round := 0; round < 10 && condition(w.job(), batchv1.JobComplete) == nil; round++ {
		w.mustSync()
		run := w.running()
		if len(run) > 2 {
			t.Fatalf("round %d: %d pods running, parallelism is 2", round, len(run))
		}
		for _, p := range run {
			w.finish(p, corev1.PodSucceeded)
		}
	}
	j := w.job()
	if c := condition(j, batchv1.JobComplete); c == nil || c.Status != corev1.ConditionTrue {
		t.Fatalf("job not complete: %+v", j.Status)
	}
	if j.Status.Succeeded != 5 || j.Status.Failed != 0 || j.Status.Active != 0 || j.Status.CompletionTime == nil || j.Status.StartTime == nil {
		t.Fatalf("status %+v", j.Status)
	}
	pods := w.pods()
	if len(pods) != 5 {
		t.Fatalf("%d pods created, want 5", len(pods))
	}
	for _, p := range pods {
		if hasFinalizer(&p) {
			t.Errorf("pod %s still has the tracking finalizer", p.Name)
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != "job-uid" {
			t.Errorf("pod %s has no controller reference to the job", p.Name)
		}
	}
}

func TestBackoffLimitWithExponentialBackoff(t *testing.T) {
	j := newJob(ptr.To[int32](1), ptr.To[int32](1))
	j.Spec.BackoffLimit = ptr.To[int32](2)
	w := newWorld(t, j)
	w.mustSync()
	for i, wait := range []time.Duration{10 * time.Second, 20 * time.Second} {
		run := w.running()
		if len(run) != 1 {
			t.Fatalf("failure %d: %d pods running, want 1", i, len(run))
		}
		w.finish(run[0], corev1.PodFailed)
		w.mustSync()
		if n := len(w.running()); n != 0 {
			t.Fatalf("failure %d: a replacement was created without back-off", i)
		}
		if got := w.job().Status.Failed; got != int32(i+1) {
			t.Fatalf("failed = %d, want %d", got, i+1)
		}
		w.clock.Step(wait - time.Second)
		w.mustSync()
		if n := len(w.running()); n != 0 {
			t.Fatalf("failure %d: replacement before %v", i, wait)
		}
		w.clock.Step(time.Second)
		w.mustSync()
		if n := len(w.running()); n != 1 {
			t.Fatalf("failure %d: no replacement after %v", i, wait)
		}
	}
	w.finish(w.running()[0], corev1.PodFailed)
	w.mustSync()
	got := w.job()
	c := condition(got, batchv1.JobFailed)
	if c == nil || c.Reason != "BackoffLimitExceeded" || got.Status.Failed != 3 {
		t.Fatalf("want Failed/BackoffLimitExceeded with 3 failures, got %+v", got.Status)
	}
}

func TestActiveDeadline(t *testing.T) {
	j := newJob(ptr.To[int32](1), ptr.To[int32](1))
	j.Spec.ActiveDeadlineSeconds = ptr.To[int64](30)
	w := newWorld(t, j)
	w.mustSync()
	if len(w.running()) != 1 {
		t.Fatal("no pod")
	}
	w.clock.Step(31 * time.Second)
	w.mustSync()
	// First the interim FailureTarget while the pod is stopped, then
	// Failed once it is gone.
	got := w.job()
	if c := condition(got, batchv1.JobFailureTarget); c == nil || c.Reason != "DeadlineExceeded" || condition(got, batchv1.JobFailed) != nil {
		t.Fatalf("want only FailureTarget/DeadlineExceeded, got %+v", got.Status)
	}
	w.mustSync()
	got = w.job()
	if c := condition(got, batchv1.JobFailed); c == nil || c.Reason != "DeadlineExceeded" {
		t.Fatalf("want DeadlineExceeded, got %+v", got.Status)
	}
	if len(w.pods()) != 0 {
		t.Fatal("the running pod was not deleted")
	}
}

func TestIndexed(t *testing.T) {
	j := newJob(ptr.To[int32](3), ptr.To[int32](3))
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	w := newWorld(t, j)
	w.mustSync()
	run := w.running()
	if len(run) != 3 {
		t.Fatalf("%d pods, want 3", len(run))
	}
	byIndex := map[string]corev1.Pod{}
	for _, p := range run {
		ix := p.Annotations[CompletionIndexAnnotation]
		byIndex[ix] = p
		if p.Labels[CompletionIndexAnnotation] != ix || p.Spec.Hostname != "j-"+ix {
			t.Errorf("pod %s: label %q hostname %q", p.Name, p.Labels[CompletionIndexAnnotation], p.Spec.Hostname)
		}
		env := p.Spec.Containers[0].Env
		if len(env) != 1 || env[0].Name != "JOB_COMPLETION_INDEX" || env[0].ValueFrom.FieldRef == nil {
			t.Errorf("pod %s env %+v", p.Name, env)
		}
	}
	if len(byIndex) != 3 {
		t.Fatalf("indexes %v", byIndex)
	}
	w.finish(byIndex["1"], corev1.PodSucceeded)
	w.finish(byIndex["2"], corev1.PodFailed)
	w.mustSync()
	got := w.job()
	if got.Status.CompletedIndexes != "1" || got.Status.Succeeded != 1 || got.Status.Failed != 1 {
		t.Fatalf("status %+v", got.Status)
	}
	w.clock.Step(10 * time.Second)
	w.mustSync()
	for _, p := range w.running() {
		if p.Annotations[CompletionIndexAnnotation] == "1" {
			t.Fatal("a completed index got a new pod")
		}
		w.finish(p, corev1.PodSucceeded)
	}
	w.mustSync()
	got = w.job()
	if got.Status.CompletedIndexes != "0-2" || condition(got, batchv1.JobComplete) == nil {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestSuspendAndResume(t *testing.T) {
	j := newJob(ptr.To[int32](2), ptr.To[int32](2))
	j.Spec.Suspend = ptr.To(true)
	w := newWorld(t, j)
	w.mustSync()
	if len(w.pods()) != 0 {
		t.Fatal("a suspended job created pods")
	}
	got := w.job()
	if c := condition(got, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionTrue || got.Status.StartTime != nil {
		t.Fatalf("status %+v", got.Status)
	}
	got.Spec.Suspend = ptr.To(false)
	if _, err := w.client.BatchV1().Jobs("default").Update(context.Background(), got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.mustSync()
	if len(w.running()) != 2 {
		t.Fatal("resumed job did not create its pods")
	}
	got = w.job()
	if c := condition(got, batchv1.JobSuspended); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "JobResumed" || got.Status.StartTime == nil {
		t.Fatalf("status %+v", got.Status)
	}
	// Suspending again deletes the running pods.
	got.Spec.Suspend = ptr.To(true)
	if _, err := w.client.BatchV1().Jobs("default").Update(context.Background(), got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.mustSync()
	if len(w.pods()) != 0 || w.job().Status.Failed != 0 {
		t.Fatalf("suspension left %d pods, failed=%d", len(w.pods()), w.job().Status.Failed)
	}
}

// A crash between saving a finished pod as uncounted and counting it
// neither loses nor doubles it.
func TestCountsExactlyOnceAcrossCrash(t *testing.T) {
	w := newWorld(t, newJob(ptr.To[int32](2), ptr.To[int32](1)))
	w.mustSync()
	w.finish(w.running()[0], corev1.PodSucceeded)
	w.failPatches.Store(true)
	if err := w.sync(); err == nil {
		t.Fatal("sync succeeded although the finalizer could not be removed")
	}
	got := w.job()
	if got.Status.UncountedTerminatedPods == nil || len(got.Status.UncountedTerminatedPods.Succeeded) != 1 || got.Status.Succeeded != 0 {
		t.Fatalf("after the failed step: %+v", got.Status)
	}
	w.failPatches.Store(false)
	w.restart()
	w.mustSync()
	w.mustSync()
	got = w.job()
	if got.Status.Succeeded != 1 || len(got.Status.UncountedTerminatedPods.Succeeded) != 0 {
		t.Fatalf("after restart: %+v", got.Status)
	}
	if n := len(w.running()); n != 1 {
		t.Fatalf("%d pods running, want 1 for the second completion", n)
	}
}

func TestWorkQueueJob(t *testing.T) {
	w := newWorld(t, newJob(nil, ptr.To[int32](3)))
	w.mustSync()
	run := w.running()
	if len(run) != 3 {
		t.Fatalf("%d pods, want 3", len(run))
	}
	w.finish(run[0], corev1.PodSucceeded)
	w.mustSync()
	if n := len(w.running()); n != 2 {
		t.Fatalf("after a success no new pods should start: %d running", n)
	}
	if condition(w.job(), batchv1.JobComplete) != nil {
		t.Fatal("complete while pods still run")
	}
	for _, p := range w.running() {
		w.finish(p, corev1.PodSucceeded)
	}
	w.mustSync()
	if got := w.job(); condition(got, batchv1.JobComplete) == nil || got.Status.Succeeded != 3 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestIndexFormatting(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""}, {[]int{0}, "0"}, {[]int{1, 2}, "1,2"}, {[]int{1, 3, 4, 5, 7}, "1,3-5,7"}, {[]int{0, 1, 2, 3}, "0-3"},
	} {
		m := map[int]bool{}
		for _, i := range tc.in {
			m[i] = true
		}
		got := formatIndexes(m, 10)
		if got != tc.want {
			t.Errorf("%v: got %q want %q", tc.in, got, tc.want)
		}
		if back := parseIndexes(got, 10); len(back) != len(m) {
			t.Errorf("%q parsed back to %v", got, back)
		}
	}
}
