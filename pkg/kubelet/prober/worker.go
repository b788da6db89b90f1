package prober

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// worker probes one container with one of its probes, from its own
// goroutine, until stopped or until there is nothing left to probe.
type worker struct {
	m         *Manager
	kind      Kind
	pod       *corev1.Pod
	container *corev1.Container
	spec      *corev1.Probe
	// initial is the result a new container starts with: readiness
	// starts failed, liveness succeeded, startup unknown.
	initial Result

	stopCh    chan struct{}
	triggerCh chan struct{}

	// The loop's state, owned by the worker's goroutine.
	containerID string
	// last is the latest probe's result and streak how many probes in a
	// row had it.
	last   Result
	streak int
	// onHold stops probing a container that failed liveness or startup
	// until the kubelet replaces it.
	onHold bool
}

func newWorker(m *Manager, kind Kind, pod *corev1.Pod, c *corev1.Container, spec *corev1.Probe) *worker {
	w := &worker{
		m: m, kind: kind, pod: pod, container: c, spec: spec,
		stopCh:    make(chan struct{}, 1),
		triggerCh: make(chan struct{}, 1),
	}
	switch kind {
	case Readiness:
		w.initial = Failure
	case Liveness:
		w.initial = Success
	case Startup:
		w.initial = Unknown
	}
	return w
}

// stop ends the worker; it never blocks and may be called any number of
// times.
func (w *worker) stop() {
	select {
	case w.stopCh <- struct{}{}:
	default:
	}
}

// trigger asks for a probe now rather than at the next period.
func (w *worker) trigger() {
	select {
	case w.triggerCh <- struct{}{}:
	default:
	}
}

func (w *worker) period() time.Duration {
	if w.spec.PeriodSeconds <= 0 {
		return 10 * time.Second
	}
	return time.Duration(w.spec.PeriodSeconds) * time.Second
}

func (w *worker) run(ctx context.Context) {
	clk := w.m.cfg.Clock
	defer func() {
		if w.containerID != "" {
			w.m.removeResult(w.kind, w.containerID)
		}
		w.m.removeWorker(w)
	}()
	period := w.period()
	// A kubelet that has just started would otherwise probe all its
	// containers at once: spread the first runs over a period.
	if clk.Since(w.m.start) < period {
		t := clk.NewTimer(w.m.jitter(period))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.stopCh:
			t.Stop()
			return
		case <-t.C():
		}
	}
	ticker := clk.NewTicker(period)
	defer ticker.Stop()
	for w.doProbe(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-w.stopCh:
			return
		case <-ticker.C():
		case <-w.triggerCh:
		}
	}
}

// containerStatus finds the worker's container in the pod's status.
func (w *worker) containerStatus(status corev1.PodStatus) (corev1.ContainerStatus, bool) {
	for _, list := range [][]corev1.ContainerStatus{status.ContainerStatuses, status.InitContainerStatuses} {
		for _, cs := range list {
			if cs.Name == w.container.Name && cs.ContainerID != "" {
				return cs, true
			}
		}
	}
	return corev1.ContainerStatus{}, false
}

// doProbe probes the container once if it is due and records the result.
// It returns whether the worker should go on.
func (w *worker) doProbe(ctx context.Context) bool {
	pod, status, ok := w.m.cfg.Status.PodStatus(w.pod.UID)
	if !ok {
		// Not synced yet (or already gone).
		return true
	}
	if status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed {
		return false
	}
	cs, ok := w.containerStatus(status)
	if !ok {
		// Not created yet.
		return true
	}
	if cs.ContainerID != w.containerID {
		if w.containerID != "" {
			w.m.removeResult(w.kind, w.containerID)
		}
		w.containerID = cs.ContainerID
		w.m.setResult(pod, w.kind, w.containerID, w.initial)
		w.onHold = false
		w.last, w.streak = Unknown, 0
	}
	if w.onHold {
		return true
	}
	if cs.State.Running == nil {
		w.m.setResult(pod, w.kind, w.containerID, Failure)
		// Done for good if it will not be restarted.
		return cs.State.Terminated == nil || pod.Spec.RestartPolicy != corev1.RestartPolicyNever
	}
	if pod.DeletionTimestamp != nil && (w.kind == Liveness || w.kind == Startup) {
		// The pod is stopping: no more restarts.
		w.m.setResult(pod, w.kind, w.containerID, Success)
		return false
	}
	if int32(w.m.cfg.Clock.Since(cs.State.Running.StartedAt.Time).Seconds()) < w.spec.InitialDelaySeconds {
		return true
	}
	started := cs.Started != nil && *cs.Started
	if started == (w.kind == Startup) {
		// A startup probe is done once the container has started (it
		// resumes for the next container); the others wait for it.
		return true
	}
	result, err := w.m.probe(ctx, w, pod, status, w.containerID)
	if err != nil {
		// Could not probe: the result counts for nothing.
		return true
	}
	if result == w.last {
		w.streak++
	} else {
		w.last, w.streak = result, 1
	}
	threshold := w.spec.FailureThreshold
	if result == Success {
		threshold = w.spec.SuccessThreshold
	}
	if threshold < 1 {
		threshold = 1
	}
	if int32(w.streak) < threshold {
		return true
	}
	w.m.setResult(pod, w.kind, w.containerID, result)
	if (w.kind == Liveness || w.kind == Startup) && result == Failure {
		// The kubelet restarts the container: wait for the new one.
		w.onHold = true
		w.streak = 0
	}
	return true
}
