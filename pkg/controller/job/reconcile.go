package job

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Condition reasons and messages, as upstream writes them.
const (
	reasonBackoffLimitExceeded = "BackoffLimitExceeded"
	reasonDeadlineExceeded     = "DeadlineExceeded"
	reasonCompletionsReached   = "CompletionsReached"
	reasonSuspended            = "JobSuspended"
	reasonResumed              = "JobResumed"
)

// reconcile counts the job's finished pods, decides whether it failed,
// completed or is suspended, creates or deletes pods to match its
// parallelism and writes its status.
func (c *Controller) reconcile(ctx context.Context, key string, j *batchv1.Job, pods []*corev1.Pod) error {
	old := j.Status.DeepCopy()
	now := c.clock.Now()
	suspended := j.Spec.Suspend != nil && *j.Spec.Suspend
	indexed := j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion

	var err error
	if j, old, err = c.count(ctx, key, j, pods, suspended, indexed); err != nil {
		return err
	}

	var active, terminating []*corev1.Pod
	var restarts int32
	for _, p := range pods {
		switch stateOf(p) {
		case podActive:
			active = append(active, p)
			for _, s := range p.Status.ContainerStatuses {
				restarts += s.RestartCount
			}
		case podTerminating:
			terminating = append(terminating, p)
		}
	}

	// Suspension and resumption.
	if suspended {
		if c.setCondition(j, batchv1.JobSuspended, corev1.ConditionTrue, reasonSuspended, "Job suspended") {
			c.recorder.Event(j, corev1.EventTypeNormal, "Suspended", "Job suspended")
		}
	} else {
		if c.setCondition(j, batchv1.JobSuspended, corev1.ConditionFalse, reasonResumed, "Job resumed") {
			c.recorder.Event(j, corev1.EventTypeNormal, "Resumed", "Job resumed")
			j.Status.StartTime = &metav1.Time{Time: now}
		}
		if j.Status.StartTime == nil {
			j.Status.StartTime = &metav1.Time{Time: now}
		}
	}

	failed := j.Status.Failed
	if j.Spec.Template.Spec.RestartPolicy == corev1.RestartPolicyOnFailure {
		failed += restarts
	}
	var deadline time.Duration
	if j.Spec.ActiveDeadlineSeconds != nil && j.Status.StartTime != nil && !suspended {
		deadline = time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second - now.Sub(j.Status.StartTime.Time)
	}
	finished := true
	switch {
	case failed > ptrVal(j.Spec.BackoffLimit, 6):
		c.fail(j, reasonBackoffLimitExceeded, "Job has reached the specified backoff limit")
	case j.Spec.ActiveDeadlineSeconds != nil && j.Status.StartTime != nil && !suspended && deadline <= 0:
		c.fail(j, reasonDeadlineExceeded, "Job was active longer than specified deadline")
	case c.complete(j, indexed, len(active)):
		j.Status.CompletionTime = &metav1.Time{Time: now}
		c.setCondition(j, batchv1.JobComplete, corev1.ConditionTrue, reasonCompletionsReached, "Reached expected number of succeeded pods")
		c.recorder.Event(j, corev1.EventTypeNormal, "Completed", "Job completed")
	default:
		finished = false
	}

	var manageErr error
	switch {
	case finished || suspended:
		// Whatever still runs is no longer wanted.
		if c.exp.Satisfied(key) {
			manageErr = c.deletePods(ctx, key, j, active)
		}
		active = nil
	case c.exp.Satisfied(key):
		active, manageErr = c.manage(ctx, key, j, active, indexed)
	}

	j.Status.Active = int32(len(active))
	var ready int32
	for _, p := range active {
		if isReady(p) {
			ready++
		}
	}
	j.Status.Ready = &ready
	nTerm := int32(len(terminating))
	j.Status.Terminating = &nTerm
	if _, err := c.updateStatus(ctx, j, old); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // a newer job is on its way
		}
		return err
	}
	if deadline > 0 && !finished {
		c.queue.AddAfter(key, deadline)
	}
	return manageErr
}

// count moves newly finished pods into the job's counts, exactly once:
// their UIDs are first saved in status.uncountedTerminatedPods, then their
// tracking finalizers are removed, then they are counted. It returns the
// job with its counts and the status as stored.
func (c *Controller) count(ctx context.Context, key string, j *batchv1.Job, pods []*corev1.Pod, suspended, indexed bool) (*batchv1.Job, *batchv1.JobStatus, error) {
	stored := j.Status.DeepCopy()
	u := j.Status.UncountedTerminatedPods
	if u == nil {
		u = &batchv1.UncountedTerminatedPods{}
	}
	succ, fail := uidSet(u.Succeeded), uidSet(u.Failed)
	byUID := make(map[types.UID]*corev1.Pod, len(pods))
	var newly, released []*corev1.Pod
	for _, p := range pods {
		byUID[p.UID] = p
		if !hasFinalizer(p) || c.finalizerRemovalPending(key, p.UID) || succ[p.UID] || fail[p.UID] {
			continue
		}
		switch stateOf(p) {
		case podSucceeded, podFailed:
			newly = append(newly, p)
		case podTerminating:
			if suspended {
				// Deleted because the job was suspended: not a failure.
				released = append(released, p)
			} else {
				newly = append(newly, p)
			}
		}
	}
	if err := c.removeFinalizers(ctx, key, released, nil); err != nil {
		return nil, nil, err
	}
	now := c.clock.Now()
	sort.Slice(newly, func(a, b int) bool { return finishTime(newly[a], now).Before(finishTime(newly[b], now)) })
	for _, p := range newly {
		if stateOf(p) == podSucceeded {
			succ[p.UID] = true
			u.Succeeded = append(u.Succeeded, p.UID)
			c.recordSuccess(key)
		} else {
			fail[p.UID] = true
			u.Failed = append(u.Failed, p.UID)
			c.recordFailure(key, finishTime(p, now))
		}
	}
	if len(u.Succeeded)+len(u.Failed) == 0 {
		return j, stored, nil
	}
	if len(newly) > 0 {
		// Step one: remember the pods before their finalizers go.
		j.Status.UncountedTerminatedPods = u
		out, err := c.updateStatus(ctx, j, stored)
		if err != nil {
			return nil, nil, err
		}
		j, stored = out.DeepCopy(), out.Status.DeepCopy()
	}
	// Step two: release them.
	only := make(map[types.UID]bool, len(succ)+len(fail))
	for uid := range succ {
		only[uid] = true
	}
	for uid := range fail {
		only[uid] = true
	}
	if err := c.removeFinalizers(ctx, key, pods, only); err != nil {
		return nil, nil, err
	}
	// Step three: count them (the caller's status write persists it).
	completions := ptrVal(j.Spec.Completions, 0)
	done := parseIndexes(j.Status.CompletedIndexes, completions)
	for uid := range succ {
		if indexed {
			if p := byUID[uid]; p != nil {
				if ix := indexOf(p, completions); ix >= 0 {
					done[ix] = true
				}
			}
		} else {
			j.Status.Succeeded++
		}
	}
	j.Status.Failed += int32(len(fail))
	if indexed {
		j.Status.CompletedIndexes = formatIndexes(done, completions)
		j.Status.Succeeded = int32(len(done))
	}
	j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	return j, stored, nil
}

func (c *Controller) recordSuccess(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.backoff, key)
}

func (c *Controller) recordFailure(key string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.backoff[key]
	r.failures++
	if at.After(r.lastFailure) {
		r.lastFailure = at
	}
	c.backoff[key] = r
}

// backoffRemaining is how long new pods must still wait after the job's
// recent failures: 10s doubling per failure since the last success, at
// most 6 minutes, from the last failure.
func (c *Controller) backoffRemaining(key string) time.Duration {
	c.mu.Lock()
	r, ok := c.backoff[key]
	c.mu.Unlock()
	if !ok || r.failures == 0 {
		return 0
	}
	d := backoffBase
	for i := 1; i < r.failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax) - c.clock.Since(r.lastFailure)
}

func (c *Controller) fail(j *batchv1.Job, reason, msg string) {
	c.setCondition(j, batchv1.JobFailed, corev1.ConditionTrue, reason, msg)
	c.recorder.Event(j, corev1.EventTypeWarning, reason, msg)
}

// complete reports whether the job has succeeded.
func (c *Controller) complete(j *batchv1.Job, indexed bool, active int) bool {
	switch {
	case indexed:
		return j.Spec.Completions != nil && j.Status.Succeeded >= *j.Spec.Completions
	case j.Spec.Completions != nil:
		return j.Status.Succeeded >= *j.Spec.Completions
	default:
		// A work queue: done when one pod succeeded and none still runs.
		return j.Status.Succeeded > 0 && active == 0
	}
}

// manage creates and deletes pods so that the job runs as many as it
// should; it returns the pods active afterwards.
func (c *Controller) manage(ctx context.Context, key string, j *batchv1.Job, active []*corev1.Pod, indexed bool) ([]*corev1.Pod, error) {
	parallelism := ptrVal(j.Spec.Parallelism, 1)
	var surplus []*corev1.Pod
	var toCreate []int // completion indexes, -1 for NonIndexed
	if indexed {
		completions := ptrVal(j.Spec.Completions, 0)
		done := parseIndexes(j.Status.CompletedIndexes, completions)
		running := map[int]bool{}
		var keep []*corev1.Pod
		for _, p := range active {
			ix := indexOf(p, completions)
			if ix < 0 || done[ix] || running[ix] {
				surplus = append(surplus, p)
				continue
			}
			running[ix] = true
			keep = append(keep, p)
		}
		if extra := len(keep) - int(parallelism); extra > 0 {
			sortForDeletion(keep)
			surplus, keep = append(surplus, keep[:extra]...), keep[extra:]
		}
		active = keep
		for ix := 0; ix < int(completions) && len(active)+len(toCreate) < int(parallelism); ix++ {
			if !done[ix] && !running[ix] {
				toCreate = append(toCreate, ix)
			}
		}
	} else {
		want := parallelism
		switch {
		case j.Spec.Completions != nil:
			want = min(parallelism, *j.Spec.Completions-j.Status.Succeeded)
		case j.Status.Succeeded > 0:
			want = int32(len(active))
		}
		want = max(want, 0)
		if extra := len(active) - int(want); extra > 0 {
			sortForDeletion(active)
			surplus, active = active[:extra], active[extra:]
		}
		for range int(want) - len(active) {
			toCreate = append(toCreate, -1)
		}
	}
	if err := c.deletePods(ctx, key, j, surplus); err != nil {
		return active, err
	}
	if len(toCreate) == 0 {
		return active, nil
	}
	if wait := c.backoffRemaining(key); wait > 0 {
		c.queue.AddAfter(key, wait)
		return active, nil
	}
	toCreate = toCreate[:min(len(toCreate), burst)]
	c.exp.Expect(key, int64(len(toCreate)), nil)
	// Slow start (1, 2, 4, ...) so a failing template fails cheaply.
	for start, size := 0, 1; start < len(toCreate); start, size = start+size, size*2 {
		batch := toCreate[start:min(start+size, len(toCreate))]
		type result struct {
			pod *corev1.Pod
			err error
		}
		results := make(chan result, len(batch))
		for _, ix := range batch {
			go func() {
				p, err := c.createPod(ctx, j, ix)
				results <- result{p, err}
			}()
		}
		var first error
		for range batch {
			r := <-results
			if r.err != nil {
				c.exp.ObservedCreate(key)
				if first == nil {
					first = r.err
				}
				continue
			}
			active = append(active, r.pod)
		}
		if first != nil {
			for range len(toCreate) - start - len(batch) {
				c.exp.ObservedCreate(key)
			}
			return active, first
		}
	}
	return active, nil
}

// deletePods deletes pods (their tracking finalizer keeps them until
// they are counted).
func (c *Controller) deletePods(ctx context.Context, key string, j *batchv1.Job, pods []*corev1.Pod) error {
	if len(pods) == 0 {
		return nil
	}
	uids := make([]types.UID, len(pods))
	for i, p := range pods {
		uids[i] = p.UID
	}
	c.exp.Expect(key, 0, uids)
	var first error
	for _, p := range pods {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil {
			c.exp.ObservedDelete(key, p.UID)
			if !apierrors.IsNotFound(err) && first == nil {
				c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				first = fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			continue
		}
		c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	}
	return first
}

// createPod creates one pod from the job's template (ix is the completion
// index of an Indexed job, else -1).
func (c *Controller) createPod(ctx context.Context, j *batchv1.Job, ix int) (*corev1.Pod, error) {
	t := j.Spec.Template.DeepCopy()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    j.Name + "-",
			Namespace:       j.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      append(t.Finalizers, TrackingFinalizer),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(j, jobKind)},
		},
		Spec: t.Spec,
	}
	if ix >= 0 {
		s := strconv.Itoa(ix)
		p.GenerateName = j.Name + "-" + s + "-"
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Annotations[CompletionIndexAnnotation], p.Labels[CompletionIndexAnnotation] = s, s
		if p.Spec.Hostname == "" {
			p.Spec.Hostname = j.Name + "-" + s
		}
		env := corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['" + CompletionIndexAnnotation + "']",
		}}}
		for i := range p.Spec.Containers {
			p.Spec.Containers[i].Env = append(p.Spec.Containers[i].Env, env)
		}
		for i := range p.Spec.InitContainers {
			p.Spec.InitContainers[i].Env = append(p.Spec.InitContainers[i].Env, env)
		}
	}
	created, err := c.client.CoreV1().Pods(j.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return nil, fmt.Errorf("create pod for job %s/%s: %w", j.Namespace, j.Name, err)
	}
	c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
	return created, nil
}

// parseIndexes reads a completedIndexes list ("1,3-5"), ignoring what is
// out of [0, completions).
func parseIndexes(s string, completions int32) map[int]bool {
	out := map[int]bool{}
	if s == "" {
		return out
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := max(a, 0); i <= b && i < int(completions); i++ {
			out[i] = true
		}
	}
	return out
}

// formatIndexes writes indexes as upstream does: ascending, consecutive
// runs of three or more as ranges ("1,3-5,7").
func formatIndexes(done map[int]bool, completions int32) string {
	var parts []string
	for i := 0; i < int(completions); i++ {
		if !done[i] {
			continue
		}
		k := i
		for k+1 < int(completions) && done[k+1] {
			k++
		}
		switch {
		case k == i:
			parts = append(parts, strconv.Itoa(i))
		case k == i+1:
			parts = append(parts, strconv.Itoa(i), strconv.Itoa(k))
		default:
			parts = append(parts, fmt.Sprintf("%d-%d", i, k))
		}
		i = k
	}
	return strings.Join(parts, ",")
}
