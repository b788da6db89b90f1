// Package job runs Jobs to completion as upstream's Job controller does:
// it keeps up to parallelism pods running until completions pods have
// succeeded (or, with no completions, until one has and the rest are
// done), gives Indexed jobs one pod per completion index, replaces failed
// pods after an exponential back-off, fails the job past backoffLimit or
// activeDeadlineSeconds, suspends and resumes it, and reports
// active/ready/terminating/succeeded/failed, completedIndexes, startTime,
// completionTime and the Complete, Failed and Suspended conditions.
//
// Finished pods are counted exactly once, even across crashes, with
// upstream's tracking finalizer: every pod is created with
// batch.kubernetes.io/job-tracking; a finished pod's UID is first written
// to status.uncountedTerminatedPods, then its finalizer is removed, then
// it moves into the succeeded or failed count.
package job

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/skiff/skiff/pkg/controller/recorder"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/claim"
	"github.com/skiff/skiff/pkg/controller/expectations"
	"github.com/skiff/skiff/pkg/controller/typedhandler"
	"github.com/skiff/skiff/pkg/controller/workers"
)

const (
	// TrackingFinalizer keeps a finished pod until the controller has
	// counted it.
	TrackingFinalizer = "batch.kubernetes.io/job-tracking"
	// CompletionIndexAnnotation (and label) carry an Indexed job pod's
	// index.
	CompletionIndexAnnotation = "batch.kubernetes.io/job-completion-index"
	// completionIndexEnv is the variable the index is exposed as.
	completionIndexEnv = "JOB_COMPLETION_INDEX"

	// Back-off before replacing failed pods: 10s doubling to 6 minutes,
	// as upstream.
	backoffBase = 10 * time.Second
	backoffMax  = 6 * time.Minute

	// burst bounds the pod creations or deletions of one sync.
	burst = 500
)

var jobKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller is the Job controller.
type Controller struct {
	client   kubernetes.Interface
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	queue    workqueue.TypedRateLimitingInterface[string]
	exp      *expectations.Expectations
	clock    clock.WithTicker
	recorder record.EventRecorder
	log      *slog.Logger

	mu sync.Mutex
	// finalizersRemoved holds, per job key, the pods whose finalizer was
	// removed but whose update the informer has not shown yet, so a stale
	// cache never counts them twice.
	finalizersRemoved map[string]map[types.UID]bool
	// backoff remembers, per job key, the failures since the last success
	// and when the last one happened.
	backoff map[string]backoffRecord
}

type backoffRecord struct {
	failures    int
	lastFailure time.Time
}

// New returns the Job controller over f's informers.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, clk clock.WithTicker, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, jobs: f.Batch().V1().Jobs().Lister(), pods: f.Core().V1().Pods().Lister(),
		exp: expectations.New(clk), clock: clk, log: log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "job", Clock: clk}),
		finalizersRemoved: map[string]map[types.UID]bool{},
		backoff:           map[string]backoffRecord{},
	}
	if _, err := f.Batch().V1().Jobs().Informer().AddEventHandler(typedhandler.Keys(c.queue.Add)); err != nil {
		return nil, err
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(typedhandler.Funcs(
		func(p *corev1.Pod) { c.onPod(nil, p, false) },
		func(old, p *corev1.Pod) { c.onPod(old, p, false) },
		func(p *corev1.Pod) { c.onPod(nil, p, true) },
	))
	return c, err
}

// jobKey returns the key of the pod's controlling Job, if it has one.
func jobKey(p *corev1.Pod) (string, bool) {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != jobKind.Kind || ref.APIVersion != jobKind.GroupVersion().String() {
		return "", false
	}
	return p.Namespace + "/" + ref.Name, true
}

func (c *Controller) onPod(old, p *corev1.Pod, deleted bool) {
	key, ok := jobKey(p)
	if !ok {
		if !deleted && p.DeletionTimestamp == nil && metav1.GetControllerOf(p) == nil {
			c.enqueueMatching(p)
		}
		return
	}
	switch {
	case deleted:
		c.exp.ObservedDelete(key, p.UID)
		c.observedFinalizer(key, p.UID)
	case old == nil:
		c.exp.ObservedCreate(key)
	default:
		if p.DeletionTimestamp != nil {
			// A deletion shows as the timestamp: the tracking finalizer
			// keeps the pod.
			c.exp.ObservedDelete(key, p.UID)
		}
		if !hasFinalizer(p) {
			c.observedFinalizer(key, p.UID)
		}
	}
	c.queue.Add(key)
}

func (c *Controller) enqueueMatching(p *corev1.Pod) {
	jobs, err := c.jobs.Jobs(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, j := range jobs {
		if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.Add(j.Namespace + "/" + j.Name)
		}
	}
}

func (c *Controller) observedFinalizer(key string, uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.finalizersRemoved[key]; m != nil {
		delete(m, uid)
		if len(m) == 0 {
			delete(c.finalizersRemoved, key)
		}
	}
}

func (c *Controller) expectFinalizerRemoved(key string, uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finalizersRemoved[key] == nil {
		c.finalizersRemoved[key] = map[types.UID]bool{}
	}
	c.finalizersRemoved[key][uid] = true
}

func (c *Controller) finalizerRemovalPending(key string, uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finalizersRemoved[key][uid]
}

// Run starts the event recorder and n workers and runs until ctx ends.
func (c *Controller) Run(ctx context.Context, n int) {
	rec, stop := recorder.Start(ctx, c.client, "job-controller")
	defer stop()
	c.recorder = rec
	workers.Run(ctx, c.queue, n, c.sync, c.log)
}

func hasFinalizer(p *corev1.Pod) bool {
	for _, f := range p.Finalizers {
		if f == TrackingFinalizer {
			return true
		}
	}
	return false
}

func isFinished(j *batchv1.Job) bool {
	for _, cond := range j.Status.Conditions {
		if (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// podState classifies a pod of the job.
type podState int

const (
	podActive podState = iota
	podTerminating
	podSucceeded
	podFailed
)

func stateOf(p *corev1.Pod) podState {
	switch {
	case p.Status.Phase == corev1.PodSucceeded:
		return podSucceeded
	case p.Status.Phase == corev1.PodFailed:
		return podFailed
	case p.DeletionTimestamp != nil:
		return podTerminating
	}
	return podActive
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	j, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return c.releaseOrphans(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	j = j.DeepCopy()
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := c.claim(ctx, j, all)
	if err != nil {
		return err
	}
	if isFinished(j) || j.DeletionTimestamp != nil {
		// Nothing more is counted: let the remaining pods go.
		_, err := c.removeFinalizers(ctx, key, pods, nil)
		return err
	}
	return c.reconcile(ctx, key, j, pods)
}

func (c *Controller) forget(key string) {
	c.exp.Forget(key)
	c.mu.Lock()
	delete(c.backoff, key)
	delete(c.finalizersRemoved, key)
	c.mu.Unlock()
}

// releaseOrphans removes the tracking finalizer from the pods of a deleted
// job, so their deletion (by the garbage collector) can finish.
func (c *Controller) releaseOrphans(ctx context.Context, ns, name string) error {
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var pods []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == jobKind.Kind && ref.Name == name && hasFinalizer(p) {
			pods = append(pods, p)
		}
	}
	_, err = c.removeFinalizers(ctx, "", pods, nil)
	return err
}

// claim adopts matching orphans (with the tracking finalizer) and
// releases owned pods that stopped matching (without it); it returns the
// job's pods.
func (c *Controller) claim(ctx context.Context, j *batchv1.Job, all []*corev1.Pod) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("job %s/%s selector: %w", j.Namespace, j.Name, err)
	}
	o := claim.Owner{Meta: j, Kind: jobKind, Selector: sel, NoAdopt: isFinished(j)}
	return claim.Objects(ctx, o, all, c.patchPod, func(p *corev1.Pod, adopt bool) map[string]any {
		switch {
		case !adopt:
			return map[string]any{"finalizers": withoutFinalizer(p.Finalizers)}
		case !hasFinalizer(p):
			// Adopted pods are counted like created ones.
			return map[string]any{"finalizers": append(append([]string{}, p.Finalizers...), TrackingFinalizer)}
		}
		return nil
	})
}

func (c *Controller) patchPod(ctx context.Context, p *corev1.Pod, patch []byte) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

func withoutFinalizer(fs []string) []string {
	out := []string{}
	for _, f := range fs {
		if f != TrackingFinalizer {
			out = append(out, f)
		}
	}
	return out
}

// removeFinalizers removes the tracking finalizer from pods (all of them
// when only is nil, else those whose UID is in only); it returns the pods
// whose finalizer is gone (or which are gone) and the first error.
// Removed ones are remembered under key until observed.
func (c *Controller) removeFinalizers(ctx context.Context, key string, pods []*corev1.Pod, only map[types.UID]bool) (map[types.UID]bool, error) {
	removed := map[types.UID]bool{}
	var first error
	for _, p := range pods {
		if !hasFinalizer(p) || (only != nil && !only[p.UID]) {
			continue
		}
		if key != "" {
			c.expectFinalizerRemoved(key, p.UID)
		}
		b, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": p.UID, "finalizers": withoutFinalizer(p.Finalizers)}})
		if err != nil {
			return removed, err
		}
		_, err = c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, b, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			if key != "" {
				c.observedFinalizer(key, p.UID)
			}
			if first == nil {
				first = fmt.Errorf("remove finalizer of pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			continue
		}
		removed[p.UID] = true
	}
	return removed, first
}

// finishTime is when a finished pod finished, as well as the pod says.
func finishTime(p *corev1.Pod, now time.Time) time.Time {
	var t time.Time
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Terminated != nil && s.State.Terminated.FinishedAt.After(t) {
			t = s.State.Terminated.FinishedAt.Time
		}
	}
	if t.IsZero() && p.DeletionTimestamp != nil {
		t = p.DeletionTimestamp.Time
	}
	if t.IsZero() {
		t = now
	}
	return t
}

// indexOf returns an Indexed job pod's completion index, or -1.
func indexOf(p *corev1.Pod, completions int32) int {
	v, ok := p.Annotations[CompletionIndexAnnotation]
	if !ok {
		v, ok = p.Labels[CompletionIndexAnnotation]
	}
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i >= int(completions) {
		return -1
	}
	return i
}

func ptrVal(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func uidSet(uids []types.UID) map[types.UID]bool {
	m := make(map[types.UID]bool, len(uids))
	for _, u := range uids {
		m[u] = true
	}
	return m
}

func (c *Controller) setCondition(j *batchv1.Job, typ batchv1.JobConditionType, st corev1.ConditionStatus, reason, msg string) bool {
	now := metav1.NewTime(c.clock.Now())
	for i := range j.Status.Conditions {
		cond := &j.Status.Conditions[i]
		if cond.Type != typ {
			continue
		}
		if cond.Status == st && cond.Reason == reason && cond.Message == msg {
			return false
		}
		if cond.Status != st {
			cond.LastTransitionTime = now
		}
		cond.Status, cond.Reason, cond.Message, cond.LastProbeTime = st, reason, msg, now
		return true
	}
	if st == corev1.ConditionFalse {
		return false
	}
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{
		Type: typ, Status: st, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now,
	})
	return true
}

func (c *Controller) updateStatus(ctx context.Context, j *batchv1.Job, old *batchv1.JobStatus) (*batchv1.Job, error) {
	if apiequality.Semantic.DeepEqual(&j.Status, old) {
		return j, nil
	}
	out, err := c.client.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update status of job %s/%s: %w", j.Namespace, j.Name, err)
	}
	return out, nil
}

// sortForDeletion orders pods for scale-down: not ready first, then
// newest (pods with a bad, completed or duplicate index are picked before
// this ordering applies).
func sortForDeletion(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(a, b int) bool {
		ra, rb := isReady(pods[a]), isReady(pods[b])
		if ra != rb {
			return !ra
		}
		return pods[a].CreationTimestamp.After(pods[b].CreationTimestamp.Time)
	})
}

func isReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}
