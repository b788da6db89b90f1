package prober

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// maxRetries is how many times a probe action that errors (could not be
// run) is tried in one probe, as upstream.
const maxRetries = 3

// StatusSource gives workers the pod as the kubelet last saw it and the
// status it last computed for it (container IDs, states, the pod IP).
type StatusSource interface {
	PodStatus(uid types.UID) (*corev1.Pod, corev1.PodStatus, bool)
}

// Recorder records an event about a pod's container.
type Recorder func(pod *corev1.Pod, c *corev1.Container, eventType, reason, message string)

// Config configures a Manager.
type Config struct {
	// Handler runs the probe actions (required; NewProber's in the
	// kubelet).
	Handler Handler
	// Status is where workers find the containers they probe (required).
	Status StatusSource
	// Recorder records Unhealthy and ProbeWarning events (optional).
	Recorder Recorder
	// OnChange is called (from a worker goroutine) after a container's
	// result changed, so the kubelet syncs the pod (optional).
	OnChange func(uid types.UID)
	// Clock drives the workers' periods and delays; default real time.
	Clock clock.WithTicker
	// Rand picks the first runs' jitter; default seeded from the clock.
	// The Manager serializes its use.
	Rand *rand.Rand
	Log  *slog.Logger
}

func (c *Config) validate() error {
	if c.Handler == nil || c.Status == nil {
		return fmt.Errorf("prober: Handler and Status are required")
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewSource(c.Clock.Now().UnixNano()))
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Recorder == nil {
		c.Recorder = func(*corev1.Pod, *corev1.Container, string, string, string) {}
	}
	if c.OnChange == nil {
		c.OnChange = func(types.UID) {}
	}
	return nil
}

type workerKey struct {
	uid       types.UID
	container string
	kind      Kind
}

type resultKey struct {
	kind        Kind
	containerID string
}

// Manager runs the probe workers of a node's pods and keeps their
// results. Its methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	start time.Time

	// mu guards the maps and rand.
	mu      sync.Mutex
	pods    map[types.UID]bool
	workers map[workerKey]*worker
	results map[resultKey]Result
	// started remembers the containers StatusChanged saw started.
	started map[string]bool
}

// New returns a Manager; its workers start with AddPod.
func New(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Manager{
		cfg:     cfg,
		start:   cfg.Clock.Now(),
		pods:    map[types.UID]bool{},
		workers: map[workerKey]*worker{},
		results: map[resultKey]Result{},
		started: map[string]bool{},
	}, nil
}

// probed lists the containers whose probes run: app containers and
// sidecars (restartable init containers).
func probed(pod *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = append(out, c)
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

func probeOf(c *corev1.Container, kind Kind) *corev1.Probe {
	switch kind {
	case Startup:
		return c.StartupProbe
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	}
	return nil
}

// AddPod starts the workers of the pod's probes, once per pod: later calls
// (until RemovePod) do nothing. The workers run until ctx ends, the pod is
// removed, or they have nothing left to probe.
func (m *Manager) AddPod(ctx context.Context, pod *corev1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pods[pod.UID] {
		return
	}
	m.pods[pod.UID] = true
	for _, c := range probed(pod) {
		for _, kind := range []Kind{Startup, Liveness, Readiness} {
			spec := probeOf(c, kind)
			if spec == nil {
				continue
			}
			key := workerKey{pod.UID, c.Name, kind}
			if _, ok := m.workers[key]; ok {
				continue
			}
			w := newWorker(m, kind, pod, c, spec)
			m.workers[key] = w
			go w.run(ctx)
		}
	}
}

// RemovePod stops the pod's workers and forgets it.
func (m *Manager) RemovePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pods, uid)
	for key, w := range m.workers {
		if key.uid == uid {
			w.stop()
		}
	}
}

// Started reports whether container c (ID containerID) of pod uid has
// started: it runs and has no startup probe, or its startup probe has
// succeeded.
func (m *Manager) Started(uid types.UID, c *corev1.Container, containerID string, running bool) bool {
	if !running {
		return false
	}
	if c.StartupProbe == nil {
		return true
	}
	return m.result(Startup, containerID) == Success
}

// Ready reports whether a started container is ready: it has no readiness
// probe, or the probe's result is a success (a container whose readiness
// is not yet known is not ready).
func (m *Manager) Ready(uid types.UID, c *corev1.Container, containerID string, started bool) bool {
	if !started {
		return false
	}
	if c.ReadinessProbe == nil {
		return true
	}
	return m.result(Readiness, containerID) == Success
}

// StatusChanged tells the pod's readiness workers that the kubelet has a
// new status for it: a worker whose container is new, or has just passed
// its startup probe, probes it now rather than at its next period, so a
// container becomes ready as soon as it can.
func (m *Manager) StatusChanged(uid types.UID, status corev1.PodStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, w := range m.workers {
		if key.uid != uid || key.kind != Readiness {
			continue
		}
		cs, ok := w.containerStatus(status)
		if !ok || cs.State.Running == nil {
			continue
		}
		_, known := m.results[resultKey{Readiness, cs.ContainerID}]
		justStarted := cs.Started != nil && *cs.Started && !m.started[cs.ContainerID]
		if justStarted {
			m.started[cs.ContainerID] = true
		}
		if !known || justStarted {
			w.trigger()
		}
	}
}

// Failed reports whether the container's liveness or startup probe has
// failed (failureThreshold times in a row), and which: the kubelet kills
// such a container.
func (m *Manager) Failed(containerID string) (Kind, bool) {
	if m.result(Liveness, containerID) == Failure {
		return Liveness, true
	}
	if m.result(Startup, containerID) == Failure {
		return Startup, true
	}
	return 0, false
}

func (m *Manager) result(kind Kind, containerID string) Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.results[resultKey{kind, containerID}]
}

// setResult stores a result and tells the kubelet when it changed.
func (m *Manager) setResult(pod *corev1.Pod, kind Kind, containerID string, r Result) {
	key := resultKey{kind, containerID}
	m.mu.Lock()
	old, ok := m.results[key]
	m.results[key] = r
	m.mu.Unlock()
	if !ok || old != r {
		m.cfg.OnChange(pod.UID)
	}
}

func (m *Manager) removeResult(kind Kind, containerID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.results, resultKey{kind, containerID})
	if kind == Readiness {
		delete(m.started, containerID)
	}
}

func (m *Manager) removeWorker(w *worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := workerKey{w.pod.UID, w.container.Name, w.kind}
	if m.workers[key] == w {
		delete(m.workers, key)
	}
}

// jitter is a random wait in [0, period).
func (m *Manager) jitter(period time.Duration) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return time.Duration(m.cfg.Rand.Int63n(int64(period)))
}

// probe runs one probe of w's container, retrying an action that errors,
// and records the events upstream records: Unhealthy for a failure or an
// error, ProbeWarning for a success with a warning.
func (m *Manager) probe(ctx context.Context, w *worker, pod *corev1.Pod, status corev1.PodStatus, containerID string) (Result, error) {
	t := Target{Pod: pod, Container: w.container, ContainerID: containerID, PodIP: status.PodIP}
	var out Outcome
	var err error
	for range maxRetries {
		if out, err = m.cfg.Handler.Probe(ctx, w.spec, t); err == nil {
			break
		}
	}
	if err != nil {
		m.cfg.Recorder(pod, w.container, corev1.EventTypeWarning, "Unhealthy",
			fmt.Sprintf("%s probe errored and resulted in %s state: %s", w.kind, Unknown, err))
		return Failure, err
	}
	switch {
	case out.Result == Success && out.Warning:
		m.cfg.Recorder(pod, w.container, corev1.EventTypeWarning, "ProbeWarning", fmt.Sprintf("%s probe warning: %s", w.kind, out.Output))
		return Success, nil
	case out.Result == Success:
		return Success, nil
	case out.Result == Failure:
		m.cfg.Recorder(pod, w.container, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %s", w.kind, out.Output))
	}
	return Failure, nil
}
