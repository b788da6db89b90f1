package job

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Condition reasons and messages, as upstream writes them.
const (
	reasonBackoffLimitExceeded     = batchv1.JobReasonBackoffLimitExceeded
	reasonDeadlineExceeded         = batchv1.JobReasonDeadlineExceeded
	reasonCompletionsReached       = batchv1.JobReasonCompletionsReached
	reasonPodFailurePolicy         = batchv1.JobReasonPodFailurePolicy
	reasonSuccessPolicy            = batchv1.JobReasonSuccessPolicy
	reasonFailedIndexes            = batchv1.JobReasonFailedIndexes
	reasonMaxFailedIndexesExceeded = batchv1.JobReasonMaxFailedIndexesExceeded
	reasonSuspended                = "JobSuspended"
	reasonResumed                  = "JobResumed"
)

// syncState is what one sync knows about a job and its pods.
type syncState struct {
	key       string
	old       *batchv1.JobStatus
	j         *batchv1.Job
	pods      []*corev1.Pod
	active    []*corev1.Pod
	suspended bool
	indexed   bool
	// terminating counts pods being deleted that have not finished.
	terminating int32
	// succeededIx holds the completed indexes, counted or not yet.
	succeededIx map[int]bool
	// failedIx holds the failed indexes (nil without backoffLimitPerIndex).
	failedIx map[int]bool
	// delayed holds, per index, the failed pod kept (with its finalizer)
	// until its replacement exists, so the replacement can inherit its
	// failure count.
	delayed map[int]*corev1.Pod
	// finishing is the interim condition (FailureTarget or
	// SuccessCriteriaMet) once the job's end is decided; Failed or
	// Complete follows once no pod runs and all are counted.
	finishing *batchv1.JobCondition
	// backoff is the back-off record with this sync's finished pods.
	backoff backoffRecord
}

// reconcile decides whether the job has reached its end (success policy,
// completions, pod failure policy, backoff limits, failed indexes or
// deadline), creates or deletes pods, counts finished pods and writes the
// status. As upstream, the end is first recorded as an interim condition
// (FailureTarget or SuccessCriteriaMet) while the remaining pods are
// stopped; the terminal condition (Failed or Complete) follows once every
// pod is counted and none is still terminating.
func (c *Controller) reconcile(ctx context.Context, key string, j *batchv1.Job, pods []*corev1.Pod) error {
	now := c.clock.Now()
	s := &syncState{
		key: key, j: j, pods: pods, old: j.Status.DeepCopy(),
		suspended: j.Spec.Suspend != nil && *j.Spec.Suspend,
		indexed:   j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion,
	}
	for _, p := range pods {
		switch stateOf(p) {
		case podActive:
			s.active = append(s.active, p)
		case podTerminating:
			s.terminating++
		}
	}
	if j.Status.UncountedTerminatedPods == nil {
		j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	if j.Status.StartTime == nil && !s.suspended {
		j.Status.StartTime = &metav1.Time{Time: now}
	}
	satisfied := c.exp.Satisfied(key)
	s.backoff = c.nextBackoff(s)
	deadline := c.decide(s)

	var manageErr error
	if s.finishing != nil {
		// The end is decided: whatever still runs is no longer wanted.
		if satisfied {
			var deleted []*corev1.Pod
			deleted, manageErr = c.deletePods(ctx, key, j, s.active, false)
			s.active = without(s.active, deleted)
			s.terminating += int32(len(deleted))
		}
	} else {
		managed := false
		if satisfied && j.DeletionTimestamp == nil {
			s.active, manageErr = c.manage(ctx, s)
			managed = true
		}
		if c.complete(s) {
			s.finishing = c.newCondition(batchv1.JobSuccessCriteriaMet, reasonCompletionsReached, "Reached expected number of succeeded pods")
		} else if managed {
			c.setSuspended(s, now)
		}
	}

	j.Status.Active = int32(len(s.active))
	var ready int32
	for _, p := range s.active {
		if isReady(p) {
			ready++
		}
	}
	j.Status.Ready = &ready
	j.Status.Terminating = ptr.To(s.terminating)
	if err := c.track(ctx, s); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // a newer job is on its way
		}
		return err
	}
	if deadline > 0 && s.finishing == nil {
		c.queue.AddAfter(key, deadline)
	}
	return manageErr
}

// decide computes the succeeded and failed indexes and whether the job has
// reached its end, in upstream's order: an end recorded earlier, then a
// FailJob rule, the backoff limit and the deadline, then failed indexes,
// then the success policy. It returns how long until the active deadline,
// if one is pending.
func (c *Controller) decide(s *syncState) time.Duration {
	j := s.j
	if cond := trueCondition(j, batchv1.JobSuccessCriteriaMet); cond != nil {
		s.finishing = cond.DeepCopy()
	} else if cond := trueCondition(j, batchv1.JobFailureTarget); cond != nil {
		s.finishing = cond.DeepCopy()
	} else if msg := failJobMessage(j, s.pods); msg != "" {
		s.finishing = c.newCondition(batchv1.JobFailureTarget, reasonPodFailurePolicy, msg)
	}
	var deadline time.Duration
	if s.finishing == nil {
		switch {
		case c.failures(s) > ptrVal(j.Spec.BackoffLimit, 6) || pastBackoffLimitOnFailure(j, s.pods):
			s.finishing = c.newCondition(batchv1.JobFailureTarget, reasonBackoffLimitExceeded, "Job has reached the specified backoff limit")
		case j.Spec.ActiveDeadlineSeconds != nil && j.Status.StartTime != nil && !s.suspended:
			deadline = time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second - c.clock.Since(j.Status.StartTime.Time)
			if deadline <= 0 {
				s.finishing = c.newCondition(batchv1.JobFailureTarget, reasonDeadlineExceeded, "Job was active longer than specified deadline")
			}
		}
	}
	if !s.indexed {
		return deadline
	}
	completions := ptrVal(j.Spec.Completions, 0)
	s.succeededIx = parseIndexes(j.Status.CompletedIndexes, completions)
	for _, p := range s.pods {
		if ix := indexOf(p, completions); ix >= 0 && p.Status.Phase == corev1.PodSucceeded && hasFinalizer(p) {
			s.succeededIx[ix] = true
		}
	}
	if j.Spec.BackoffLimitPerIndex != nil {
		s.failedIx = parseIndexes(ptr.Deref(j.Status.FailedIndexes, ""), completions)
		for _, p := range s.pods {
			if ix := indexOf(p, completions); ix >= 0 && hasFinalizer(p) && isIndexFailed(j, p) {
				s.failedIx[ix] = true
			}
		}
		if s.finishing == nil {
			switch {
			case j.Spec.MaxFailedIndexes != nil && len(s.failedIx) > int(*j.Spec.MaxFailedIndexes):
				s.finishing = c.newCondition(batchv1.JobFailureTarget, reasonMaxFailedIndexesExceeded, "Job has exceeded the specified maximal number of failed indexes")
			case len(s.failedIx) > 0 && len(s.failedIx)+len(s.succeededIx) >= int(completions):
				s.finishing = c.newCondition(batchv1.JobFailureTarget, reasonFailedIndexes, "Job has failed indexes")
			}
		}
		s.delayed = c.delayedPerIndex(s)
	}
	if s.finishing == nil {
		if msg, ok := matchSuccessPolicy(j, s.succeededIx); ok {
			s.finishing = c.newCondition(batchv1.JobSuccessCriteriaMet, reasonSuccessPolicy, msg)
		}
	}
	return deadline
}

// failures is the job's failure count including the failures not counted
// yet, without those a pod failure policy ignores.
func (c *Controller) failures(s *syncState) int32 {
	u := s.j.Status.UncountedTerminatedPods
	n := s.j.Status.Failed + int32(len(u.Failed))
	uncounted := uidSet(u.Failed)
	for _, p := range s.pods {
		if c.countable(s, p) && !uncounted[p.UID] && isPodFailed(s.j, p) && judgeFailure(s.j, p).counts {
			n++
		}
	}
	return n
}

// countable reports whether a pod still awaits counting: it has the
// tracking finalizer, this controller has not just removed it, and (for
// an Indexed job) its index is valid.
func (c *Controller) countable(s *syncState, p *corev1.Pod) bool {
	if !hasFinalizer(p) || c.finalizerRemovalPending(s.key, p.UID) {
		return false
	}
	return !s.indexed || indexOf(p, ptrVal(s.j.Spec.Completions, 0)) >= 0
}

// delayedPerIndex picks, per index that has neither succeeded, failed nor
// a running pod, its latest failed pod: that pod keeps its finalizer
// until the replacement is created.
func (c *Controller) delayedPerIndex(s *syncState) map[int]*corev1.Pod {
	completions := ptrVal(s.j.Spec.Completions, 0)
	running := map[int]bool{}
	for _, p := range s.active {
		running[indexOf(p, completions)] = true
	}
	out := map[int]*corev1.Pod{}
	now := c.clock.Now()
	for _, p := range s.pods {
		ix := indexOf(p, completions)
		if !c.countable(s, p) || !isPodFailed(s.j, p) || s.succeededIx[ix] || s.failedIx[ix] || running[ix] {
			continue
		}
		if prev, ok := out[ix]; ok {
			a, b := absoluteFailures(prev), absoluteFailures(p)
			if a > b || (a == b && finishTime(p, now).Before(finishTime(prev, now))) {
				continue
			}
		}
		out[ix] = p
	}
	return out
}

func absoluteFailures(p *corev1.Pod) int32 {
	return annotationCount(p, indexFailureCountAnnotation) + annotationCount(p, indexIgnoredFailureCountAnnotation)
}

// canRelease reports whether a pod's tracking finalizer may go now.
func (s *syncState) canRelease(p *corev1.Pod) bool {
	if s.j.DeletionTimestamp != nil || s.finishing != nil || p.Status.Phase == corev1.PodSucceeded {
		return true
	}
	if !isPodFailed(s.j, p) {
		return false
	}
	if d, ok := s.delayed[indexOf(p, ptrVal(s.j.Spec.Completions, 0))]; ok && d.UID == p.UID {
		return false
	}
	return true
}

// track counts newly finished pods exactly once: their UIDs (for an
// Indexed job, their indexes) and any interim condition are first saved
// in the status, then their tracking finalizers are removed, then they
// move into the counts; once the job's end is decided, no pod is left
// and every pod is counted, it adds the terminal condition. It writes the
// status.
func (c *Controller) track(ctx context.Context, s *syncState) error {
	j := s.j
	stored := s.old
	u := j.Status.UncountedTerminatedPods
	succ, fail := uidSet(u.Succeeded), uidSet(u.Failed)
	var release []*corev1.Pod
	for _, p := range s.pods {
		if !hasFinalizer(p) || c.finalizerRemovalPending(s.key, p.UID) {
			continue
		}
		if s.suspended && stateOf(p) == podTerminating {
			// Deleted while the job is suspended: not a failure.
			release = append(release, p)
			continue
		}
		if !s.canRelease(p) {
			continue
		}
		release = append(release, p)
		failed := isPodFailed(j, p)
		switch {
		case p.Status.Phase == corev1.PodSucceeded && !fail[p.UID]:
			if !s.indexed && !succ[p.UID] {
				succ[p.UID] = true
				u.Succeeded = append(u.Succeeded, p.UID)
			}
		case failed || (s.finishing != nil && s.finishing.Type == batchv1.JobFailureTarget):
			// Once the job is failing, every unfinished pod is a failure.
			if fail[p.UID] || !c.countable(s, p) {
				continue
			}
			if judgeFailure(j, p).counts {
				fail[p.UID] = true
				u.Failed = append(u.Failed, p.UID)
			}
		}
	}
	if s.indexed {
		completions := ptrVal(j.Spec.Completions, 0)
		j.Status.CompletedIndexes = formatIndexes(s.succeededIx, completions)
		j.Status.Succeeded = int32(len(s.succeededIx))
		if s.failedIx != nil {
			j.Status.FailedIndexes = ptr.To(formatIndexes(s.failedIx, completions))
		}
	}
	if s.finishing != nil && trueCondition(j, s.finishing.Type) == nil {
		j.Status.Conditions = append(j.Status.Conditions, *s.finishing)
		if s.finishing.Type == batchv1.JobFailureTarget {
			c.recorder.Event(j, corev1.EventTypeWarning, s.finishing.Reason, s.finishing.Message)
		}
	}
	// Step one: remember the pods (and the decided end) before their
	// finalizers go.
	out, err := c.updateStatus(ctx, j, stored)
	if err != nil {
		return err
	}
	*j = *out.DeepCopy()
	stored = out.Status.DeepCopy()
	c.saveBackoff(s.key, s.backoff)
	u = j.Status.UncountedTerminatedPods
	if u == nil {
		u = &batchv1.UncountedTerminatedPods{}
		j.Status.UncountedTerminatedPods = u
	}
	// Step two: release them.
	removed, rmErr := c.removeFinalizers(ctx, s.key, release, nil)
	// Step three: count every uncounted pod whose finalizer is gone.
	withFinalizer := map[types.UID]bool{}
	for _, p := range s.pods {
		if hasFinalizer(p) && !c.finalizerRemovalPending(s.key, p.UID) && !removed[p.UID] {
			withFinalizer[p.UID] = true
		}
	}
	keep := func(uids []types.UID) []types.UID {
		var out []types.UID
		for _, uid := range uids {
			if withFinalizer[uid] {
				out = append(out, uid)
			}
		}
		return out
	}
	succLeft, failLeft := keep(u.Succeeded), keep(u.Failed)
	j.Status.Succeeded += int32(len(u.Succeeded) - len(succLeft))
	j.Status.Failed += int32(len(u.Failed) - len(failLeft))
	u.Succeeded, u.Failed = succLeft, failLeft
	if rmErr == nil {
		c.finish(s)
	}
	if _, err := c.updateStatus(ctx, j, stored); err != nil {
		return err
	}
	return rmErr
}

// finish adds the terminal condition the interim one leads to, once no
// pod runs or terminates and every finished pod is counted.
func (c *Controller) finish(s *syncState) {
	j, f := s.j, s.finishing
	u := j.Status.UncountedTerminatedPods
	if f == nil || len(u.Succeeded)+len(u.Failed) > 0 || s.terminating > 0 || len(s.active) > 0 {
		return
	}
	if f.Type == batchv1.JobSuccessCriteriaMet {
		j.Status.CompletionTime = &metav1.Time{Time: c.clock.Now()}
		c.setCondition(j, batchv1.JobComplete, corev1.ConditionTrue, f.Reason, f.Message)
		if j.Spec.Completions != nil && j.Status.Succeeded > *j.Spec.Completions {
			c.recorder.Event(j, corev1.EventTypeWarning, "TooManySucceededPods", "Too many succeeded pods running after completion count reached")
		}
		c.recorder.Event(j, corev1.EventTypeNormal, "Completed", "Job completed")
		return
	}
	c.setCondition(j, batchv1.JobFailed, corev1.ConditionTrue, f.Reason, f.Message)
	c.recorder.Event(j, corev1.EventTypeWarning, f.Reason, f.Message)
}

func (c *Controller) newCondition(typ batchv1.JobConditionType, reason, msg string) *batchv1.JobCondition {
	now := metav1.NewTime(c.clock.Now())
	return &batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now}
}

func trueCondition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == typ && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// setSuspended keeps the Suspended condition in step with spec.suspend;
// resuming restarts the active deadline.
func (c *Controller) setSuspended(s *syncState, now time.Time) {
	j := s.j
	if s.suspended {
		if c.setCondition(j, batchv1.JobSuspended, corev1.ConditionTrue, reasonSuspended, "Job suspended") {
			c.recorder.Event(j, corev1.EventTypeNormal, "Suspended", "Job suspended")
		}
		return
	}
	if c.setCondition(j, batchv1.JobSuspended, corev1.ConditionFalse, reasonResumed, "Job resumed") {
		c.recorder.Event(j, corev1.EventTypeNormal, "Resumed", "Job resumed")
		j.Status.StartTime = &metav1.Time{Time: now}
	}
}

// pastBackoffLimitOnFailure reports whether the restarts of running pods
// (restartPolicy OnFailure) reached the backoff limit.
func pastBackoffLimitOnFailure(j *batchv1.Job, pods []*corev1.Pod) bool {
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			restarts += cs.RestartCount
		}
	}
	limit := ptrVal(j.Spec.BackoffLimit, 6)
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}

func without(pods, drop []*corev1.Pod) []*corev1.Pod {
	gone := make(map[types.UID]bool, len(drop))
	for _, p := range drop {
		gone[p.UID] = true
	}
	var out []*corev1.Pod
	for _, p := range pods {
		if !gone[p.UID] {
			out = append(out, p)
		}
	}
	return out
}

// nextBackoff is the job's back-off record once the newly finished pods
// are taken in: a success clears the failures before it, each later
// failure adds one.
func (c *Controller) nextBackoff(s *syncState) backoffRecord {
	c.mu.Lock()
	r := c.backoff[s.key]
	c.mu.Unlock()
	now := c.clock.Now()
	u := s.j.Status.UncountedTerminatedPods
	uncounted := uidSet(append(append([]types.UID{}, u.Succeeded...), u.Failed...))
	var lastSuccess time.Time
	var failures []time.Time
	for _, p := range s.pods {
		if !c.countable(s, p) || uncounted[p.UID] {
			continue
		}
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			if t := finishTime(p, now); t.After(lastSuccess) {
				lastSuccess = t
			}
		case isPodFailed(s.j, p):
			failures = append(failures, finishTime(p, now))
		}
	}
	if !lastSuccess.IsZero() {
		r = backoffRecord{}
	}
	for _, t := range failures {
		if !lastSuccess.IsZero() && !t.After(lastSuccess) {
			continue
		}
		r.failures++
		if t.After(r.lastFailure) {
			r.lastFailure = t
		}
	}
	return r
}

// saveBackoff keeps the record once the pods it took in are saved.
func (c *Controller) saveBackoff(key string, r backoffRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.backoff[key] = r
}

// backoffRemaining is how long new pods must still wait after the job's
// recent failures: 10s doubling per failure since the last success, at
// most 6 minutes, from the last failure.
func (c *Controller) backoffRemaining(r backoffRecord) time.Duration {
	if r.failures == 0 {
		return 0
	}
	d := backoffBase
	for i := 1; i < r.failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax) - c.clock.Since(r.lastFailure)
}

// complete reports whether the job has as many successes as it needs and
// no pod still runs.
func (c *Controller) complete(s *syncState) bool {
	if len(s.active) > 0 {
		return false
	}
	if s.j.Spec.Completions == nil {
		// A work queue: done when one pod succeeded and none still runs.
		return c.succeeded(s) > 0
	}
	return c.succeeded(s) >= *s.j.Spec.Completions
}

// succeeded is the job's success count including the successes not
// counted yet.
func (c *Controller) succeeded(s *syncState) int32 {
	if s.indexed {
		return int32(len(s.succeededIx))
	}
	u := s.j.Status.UncountedTerminatedPods
	n := s.j.Status.Succeeded + int32(len(u.Succeeded))
	uncounted := uidSet(u.Succeeded)
	for _, p := range s.pods {
		if p.Status.Phase == corev1.PodSucceeded && c.countable(s, p) && !uncounted[p.UID] {
			n++
		}
	}
	return n
}

// manage creates and deletes pods so that the job runs as many as it
// should; it returns the pods active afterwards.
func (c *Controller) manage(ctx context.Context, s *syncState) ([]*corev1.Pod, error) {
	key, j, active := s.key, s.j, s.active
	if s.suspended {
		deleted, err := c.deletePods(ctx, key, j, active, true)
		return without(active, deleted), err
	}
	parallelism := ptrVal(j.Spec.Parallelism, 1)
	// With replacement policy Failed, a terminating pod still holds its
	// place.
	var holding int32
	holdingIx := map[int]bool{}
	if onlyReplaceFailed(j) {
		holding = s.terminating
		for _, p := range s.pods {
			if stateOf(p) == podTerminating {
				holdingIx[indexOf(p, ptrVal(j.Spec.Completions, 0))] = true
			}
		}
	}
	var surplus []*corev1.Pod
	var toCreate []int // completion indexes, -1 for NonIndexed
	if s.indexed {
		completions := ptrVal(j.Spec.Completions, 0)
		running := map[int]bool{}
		var keep []*corev1.Pod
		for _, p := range active {
			ix := indexOf(p, completions)
			if ix < 0 || s.succeededIx[ix] || running[ix] {
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
		for ix := 0; ix < int(completions) && int32(len(active)+len(toCreate))+holding < parallelism; ix++ {
			if !s.succeededIx[ix] && !s.failedIx[ix] && !running[ix] && !holdingIx[ix] {
				toCreate = append(toCreate, ix)
			}
		}
	} else {
		want := parallelism
		succeeded := c.succeeded(s)
		switch {
		case j.Spec.Completions != nil:
			want = min(parallelism, *j.Spec.Completions-succeeded)
		case succeeded > 0:
			want = int32(len(active))
		}
		want = max(want, 0)
		if extra := len(active) - int(want); extra > 0 {
			sortForDeletion(active)
			surplus, active = active[:extra], active[extra:]
		}
		for range int(want-holding) - len(active) {
			toCreate = append(toCreate, -1)
		}
	}
	if len(surplus) > 0 {
		// Deletions first; creations wait for the next sync, as upstream.
		deleted, err := c.deletePods(ctx, key, j, surplus, true)
		return append(active, without(surplus, deleted)...), err
	}
	if len(toCreate) == 0 {
		return active, nil
	}
	if j.Spec.BackoffLimitPerIndex != nil {
		var wait time.Duration
		if toCreate, wait = c.readyIndexes(s, toCreate); len(toCreate) == 0 {
			c.queue.AddAfter(key, wait)
			return active, nil
		}
	} else if wait := c.backoffRemaining(s.backoff); wait > 0 {
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
				p, err := c.createPod(ctx, s, ix)
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

// readyIndexes keeps the indexes whose per-index back-off (10s doubling
// per failure of the index, from its last failure) is over; when none
// is, it returns how long until the first one is.
func (c *Controller) readyIndexes(s *syncState, indexes []int) ([]int, time.Duration) {
	var ready []int
	var wait time.Duration
	now := c.clock.Now()
	for _, ix := range indexes {
		p := s.delayed[ix]
		if p == nil {
			ready = append(ready, ix)
			continue
		}
		d := backoffBase
		for i := int32(1); i < absoluteFailures(p)+1 && d < backoffMax; i++ {
			d *= 2
		}
		left := min(d, backoffMax) - now.Sub(finishTime(p, now))
		if left <= 0 {
			ready = append(ready, ix)
		} else if wait == 0 || left < wait {
			wait = left
		}
	}
	return ready, wait
}

// deletePods deletes pods and returns those it deleted. With release,
// their tracking finalizer goes first, so they are not counted (pods no
// longer wanted); without, it keeps them until counted.
func (c *Controller) deletePods(ctx context.Context, key string, j *batchv1.Job, pods []*corev1.Pod, release bool) ([]*corev1.Pod, error) {
	if len(pods) == 0 {
		return nil, nil
	}
	if release {
		removed, err := c.removeFinalizers(ctx, key, pods, nil)
		if err != nil {
			var kept []*corev1.Pod
			for _, p := range pods {
				if removed[p.UID] || !hasFinalizer(p) {
					kept = append(kept, p)
				}
			}
			pods = kept
		}
	}
	uids := make([]types.UID, len(pods))
	for i, p := range pods {
		uids[i] = p.UID
	}
	c.exp.Expect(key, 0, uids)
	var deleted []*corev1.Pod
	var first error
	for _, p := range pods {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil {
			c.exp.ObservedDelete(key, p.UID)
			if apierrors.IsNotFound(err) {
				deleted = append(deleted, p)
			} else if first == nil {
				c.recorder.Eventf(j, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				first = fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			continue
		}
		deleted = append(deleted, p)
		c.recorder.Eventf(j, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	}
	return deleted, first
}

// createPod creates one pod from the job's template (ix is the completion
// index of an Indexed job, else -1).
func (c *Controller) createPod(ctx context.Context, st *syncState, ix int) (*corev1.Pod, error) {
	j := st.j
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
		if j.Spec.BackoffLimitPerIndex != nil {
			failures, ignored := replacementCounts(j, st.delayed[ix])
			p.Annotations[indexFailureCountAnnotation] = strconv.Itoa(int(failures))
			if ignored > 0 {
				p.Annotations[indexIgnoredFailureCountAnnotation] = strconv.Itoa(int(ignored))
			}
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
