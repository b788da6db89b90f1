package prober

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeStatus is the kubelet's side: the pod and its last status.
type fakeStatus struct {
	mu     sync.Mutex
	pod    *corev1.Pod
	status corev1.PodStatus
	ok     bool
}

func (f *fakeStatus) PodStatus(types.UID) (*corev1.Pod, corev1.PodStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pod, *f.status.DeepCopy(), f.ok
}

// setContainer records the container as running since startedAt (or
// exited when startedAt is zero).
func (f *fakeStatus) setContainer(id string, startedAt time.Time, started bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := corev1.ContainerStatus{Name: "main", ContainerID: id, Started: &started}
	if startedAt.IsZero() {
		cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137}
	} else {
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(startedAt)}
	}
	f.status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9", ContainerStatuses: []corev1.ContainerStatus{cs}}
	f.ok = true
}

// script is a Handler answering from a list of results (the last one
// repeats) and counting its calls.
type script struct {
	mu      sync.Mutex
	results []Outcome
	errs    []error
	calls   int
	targets []Target
}

func (s *script) Probe(_ context.Context, _ *corev1.Probe, t Target) (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.targets = append(s.targets, t)
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return Outcome{}, err
	}
	out := s.results[0]
	if len(s.results) > 1 {
		s.results = s.results[1:]
	}
	return out, nil
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

var (
	ok   = Outcome{Result: Success}
	fail = Outcome{Result: Failure, Output: "HTTP probe failed with statuscode: 500"}
)

type fixture struct {
	m       *Manager
	clock   *clocktesting.FakeClock
	status  *fakeStatus
	handler *script
	pod     *corev1.Pod
	events  []string
	changes int
	mu      sync.Mutex
}

func newFixture(t *testing.T, c corev1.Container, results ...Outcome) *fixture {
	t.Helper()
	f := &fixture{clock: clocktesting.NewFakeClock(t0), handler: &script{results: results}}
	f.pod = &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{c}},
	}
	f.status = &fakeStatus{pod: f.pod}
	var err error
	f.m, err = New(Config{
		Handler: f.handler,
		Status:  f.status,
		Recorder: func(_ *corev1.Pod, c *corev1.Container, typ, reason, msg string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, fmt.Sprintf("%s %s %s: %s", c.Name, typ, reason, msg))
		},
		OnChange: func(types.UID) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.changes++
		},
		Clock: f.clock,
		Rand:  rand.New(rand.NewSource(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// worker returns a worker of the given kind without starting its
// goroutine: the tests call doProbe themselves.
func (f *fixture) worker(kind Kind) *worker {
	c := &f.pod.Spec.Containers[0]
	w := newWorker(f.m, kind, f.pod, c, probeOf(c, kind))
	f.m.workers[workerKey{f.pod.UID, c.Name, kind}] = w
	return w
}

func probeSpec(period, initialDelay, success, failure int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}},
		PeriodSeconds:       period,
		InitialDelaySeconds: initialDelay,
		SuccessThreshold:    success,
		FailureThreshold:    failure,
		TimeoutSeconds:      1,
	}
}

func TestLivenessFailsAfterFailureThresholdAndWaitsForTheNextContainer(t *testing.T) {
	c := corev1.Container{Name: "main", LivenessProbe: probeSpec(10, 0, 1, 3)}
	f := newFixture(t, c, ok, fail, fail, ok, fail, fail, fail, ok)
	w := f.worker(Liveness)
	f.status.setContainer("skiff://a", t0, true)
	ctx := context.Background()
	want := []bool{false, false, false, false, false, false, true}
	for i, failed := range want {
		if !w.doProbe(ctx) {
			t.Fatalf("probe %d: worker stopped", i)
		}
		if _, got := f.m.Failed("skiff://a"); got != failed {
			t.Fatalf("probe %d: Failed = %v, want %v", i, got, failed)
		}
	}
	if kind, _ := f.m.Failed("skiff://a"); kind != Liveness {
		t.Fatalf("Failed kind = %v", kind)
	}
	// On hold until the kubelet replaces the container.
	calls := f.handler.count()
	w.doProbe(ctx)
	if f.handler.count() != calls {
		t.Fatal("probed a container that failed liveness")
	}
	f.status.setContainer("skiff://b", t0, true)
	w.doProbe(ctx)
	if f.handler.count() != calls+1 {
		t.Fatal("did not probe the new container")
	}
	if _, failed := f.m.Failed("skiff://b"); failed {
		t.Fatal("new container failed")
	}
	if _, failed := f.m.Failed("skiff://a"); failed {
		t.Fatal("the old container's result was kept")
	}
	var unhealthy int
	for _, e := range f.events {
		if e == "main Warning Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500" {
			unhealthy++
		}
	}
	if unhealthy != 5 {
		t.Fatalf("%d Unhealthy events, want one per failed probe (5):\n%s", unhealthy, strings.Join(f.events, "\n"))
	}
}

func TestReadinessStartsNotReadyAndFollowsThresholds(t *testing.T) {
	c := corev1.Container{Name: "main", ReadinessProbe: probeSpec(10, 0, 2, 2)}
	f := newFixture(t, c, ok, ok, fail, ok, fail, fail, ok)
	w := f.worker(Readiness)
	f.status.setContainer("skiff://a", t0, true)
	if f.m.Ready(f.pod.UID, &c, "skiff://a", true) {
		t.Fatal("ready before any probe")
	}
	ctx := context.Background()
	want := []bool{false, true, true, true, true, false, false}
	for i, ready := range want {
		w.doProbe(ctx)
		if got := f.m.Ready(f.pod.UID, &c, "skiff://a", true); got != ready {
			t.Fatalf("probe %d: Ready = %v, want %v", i, got, ready)
		}
	}
	// initial (not ready), ready, not ready.
	if f.changes != 3 {
		t.Fatalf("%d changes reported, want 3", f.changes)
	}
	if f.m.Ready(f.pod.UID, &c, "skiff://a", false) {
		t.Fatal("a container that has not started is ready")
	}
	noProbe := corev1.Container{Name: "other"}
	if !f.m.Ready(f.pod.UID, &noProbe, "skiff://x", true) {
		t.Fatal("a container without a readiness probe is not ready")
	}
}

func TestInitialDelay(t *testing.T) {
	c := corev1.Container{Name: "main", LivenessProbe: probeSpec(1, 5, 1, 1)}
	f := newFixture(t, c, ok)
	w := f.worker(Liveness)
	f.status.setContainer("skiff://a", t0, true)
	for range 5 {
		w.doProbe(context.Background())
		f.clock.Step(time.Second)
	}
	if n := f.handler.count(); n != 0 {
		t.Fatalf("probed %d times within initialDelaySeconds", n)
	}
	w.doProbe(context.Background())
	if n := f.handler.count(); n != 1 {
		t.Fatalf("probed %d times after initialDelaySeconds", n)
	}
}

func TestStartupProbeGatesLivenessAndReadiness(t *testing.T) {
	c := corev1.Container{
		Name:           "main",
		StartupProbe:   probeSpec(1, 0, 1, 3),
		LivenessProbe:  probeSpec(1, 0, 1, 1),
		ReadinessProbe: probeSpec(1, 0, 1, 1),
	}
	f := newFixture(t, c, fail, ok)
	startup, liveness, readiness := f.worker(Startup), f.worker(Liveness), f.worker(Readiness)
	f.status.setContainer("skiff://a", t0, false)
	ctx := context.Background()
	liveness.doProbe(ctx)
	readiness.doProbe(ctx)
	if n := f.handler.count(); n != 0 {
		t.Fatalf("liveness or readiness probed %d times before startup", n)
	}
	if f.m.Started(f.pod.UID, &c, "skiff://a", true) {
		t.Fatal("started before its startup probe succeeded")
	}
	startup.doProbe(ctx) // fails (below the threshold)
	startup.doProbe(ctx) // succeeds
	if !f.m.Started(f.pod.UID, &c, "skiff://a", true) {
		t.Fatal("not started after its startup probe succeeded")
	}
	if f.m.Ready(f.pod.UID, &c, "skiff://a", true) {
		t.Fatal("ready before its readiness probe ran")
	}
	// The kubelet reports the container started: the others take over.
	f.status.setContainer("skiff://a", t0, true)
	calls := f.handler.count()
	startup.doProbe(ctx)
	if f.handler.count() != calls {
		t.Fatal("startup probe ran after the container started")
	}
	liveness.doProbe(ctx)
	readiness.doProbe(ctx)
	if f.handler.count() != calls+2 {
		t.Fatal("liveness and readiness did not run after startup")
	}
	if !f.m.Ready(f.pod.UID, &c, "skiff://a", true) {
		t.Fatal("not ready")
	}
}

func TestStartupFailureKills(t *testing.T) {
	c := corev1.Container{Name: "main", StartupProbe: probeSpec(1, 0, 1, 2)}
	f := newFixture(t, c, fail)
	w := f.worker(Startup)
	f.status.setContainer("skiff://a", t0, false)
	w.doProbe(context.Background())
	if _, failed := f.m.Failed("skiff://a"); failed {
		t.Fatal("failed below the threshold")
	}
	w.doProbe(context.Background())
	if kind, failed := f.m.Failed("skiff://a"); !failed || kind != Startup {
		t.Fatalf("Failed = %v, %v; want Startup", kind, failed)
	}
	if f.events[0] != "main Warning Unhealthy: Startup probe failed: HTTP probe failed with statuscode: 500" {
		t.Fatalf("events: %q", f.events)
	}
}

func TestProbeErrorsAreRetriedAndNotCounted(t *testing.T) {
	c := corev1.Container{Name: "main", LivenessProbe: probeSpec(1, 0, 1, 1)}
	f := newFixture(t, c, ok)
	f.handler.errs = []error{errors.New("port http: no such port"), errors.New("port http: no such port"), errors.New("port http: no such port")}
	w := f.worker(Liveness)
	f.status.setContainer("skiff://a", t0, true)
	w.doProbe(context.Background())
	if n := f.handler.count(); n != maxRetries {
		t.Fatalf("%d tries, want %d", n, maxRetries)
	}
	if _, failed := f.m.Failed("skiff://a"); failed {
		t.Fatal("an errored probe counted as a failure")
	}
	want := "main Warning Unhealthy: Liveness probe errored and resulted in unknown state: port http: no such port"
	if len(f.events) != 1 || f.events[0] != want {
		t.Fatalf("events %q, want %q", f.events, want)
	}
	// An error followed by an answer is one probe.
	f.handler.errs = []error{errors.New("transient")}
	w.doProbe(context.Background())
	if n := f.handler.count(); n != maxRetries+2 {
		t.Fatalf("%d tries in all, want %d", n, maxRetries+2)
	}
}

func TestRedirectWarningIsASuccessWithAnEvent(t *testing.T) {
	c := corev1.Container{Name: "main", ReadinessProbe: probeSpec(1, 0, 1, 1)}
	f := newFixture(t, c, Outcome{Result: Success, Warning: true, Output: "Probe terminated redirects, Response body: "})
	w := f.worker(Readiness)
	f.status.setContainer("skiff://a", t0, true)
	w.doProbe(context.Background())
	if !f.m.Ready(f.pod.UID, &c, "skiff://a", true) {
		t.Fatal("not ready after a redirect")
	}
	if len(f.events) != 1 || f.events[0] != "main Warning ProbeWarning: Readiness probe warning: Probe terminated redirects, Response body: " {
		t.Fatalf("events %q", f.events)
	}
}

func TestWorkerEnds(t *testing.T) {
	c := corev1.Container{Name: "main", LivenessProbe: probeSpec(1, 0, 1, 1), ReadinessProbe: probeSpec(1, 0, 1, 1)}
	t.Run("pod deleted: liveness stops as a success", func(t *testing.T) {
		f := newFixture(t, c, fail)
		w := f.worker(Liveness)
		f.status.setContainer("skiff://a", t0, true)
		now := metav1.NewTime(t0)
		deleting := f.pod.DeepCopy()
		deleting.DeletionTimestamp = &now
		f.status.pod = deleting
		if w.doProbe(context.Background()) {
			t.Fatal("liveness worker goes on for a pod being deleted")
		}
		if _, failed := f.m.Failed("skiff://a"); failed || f.handler.count() != 0 {
			t.Fatal("probed a pod being deleted")
		}
	})
	t.Run("container exited for good", func(t *testing.T) {
		f := newFixture(t, c, ok)
		f.pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		w := f.worker(Readiness)
		f.status.setContainer("skiff://a", time.Time{}, false)
		if w.doProbe(context.Background()) {
			t.Fatal("worker goes on for a container that will not restart")
		}
	})
	t.Run("pod finished", func(t *testing.T) {
		f := newFixture(t, c, ok)
		w := f.worker(Readiness)
		f.status.setContainer("skiff://a", t0, true)
		f.status.status.Phase = corev1.PodSucceeded
		if w.doProbe(context.Background()) {
			t.Fatal("worker goes on for a finished pod")
		}
	})
	t.Run("no status yet", func(t *testing.T) {
		f := newFixture(t, c, ok)
		w := f.worker(Readiness)
		if !w.doProbe(context.Background()) || f.handler.count() != 0 {
			t.Fatal("worker without a status stopped or probed")
		}
	})
}

// TestRunProbesEveryPeriodAfterAJitteredStart runs the worker goroutines
// on a fake clock: the first run waits a random part of a period (the
// kubelet has just started), then one probe per period; RemovePod ends
// them and drops their results.
func TestRunProbesEveryPeriodAfterAJitteredStart(t *testing.T) {
	c := corev1.Container{Name: "main", LivenessProbe: probeSpec(10, 0, 1, 1)}
	f := newFixture(t, c, ok)
	f.status.setContainer("skiff://a", t0, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.m.AddPod(ctx, f.pod)
	f.m.AddPod(ctx, f.pod) // once per pod
	waitFor(t, "the jitter timer", func() bool { return f.clock.Waiters() == 1 })
	if f.handler.count() != 0 {
		t.Fatal("probed before the jitter")
	}
	f.clock.Step(10 * time.Second)
	waitFor(t, "the first probe", func() bool { return f.handler.count() == 1 && f.clock.Waiters() == 1 })
	for i := 2; i <= 4; i++ {
		f.clock.Step(10 * time.Second)
		waitFor(t, fmt.Sprintf("probe %d", i), func() bool { return f.handler.count() == i && f.clock.Waiters() == 1 })
	}
	f.m.RemovePod(f.pod.UID)
	waitFor(t, "the worker to end", func() bool {
		f.m.mu.Lock()
		defer f.m.mu.Unlock()
		return len(f.m.workers) == 0 && len(f.m.results) == 0
	})
}

// TestStatusChangedProbesANewContainerNow: readiness is probed as soon as
// the kubelet reports the container, not a period later.
func TestStatusChangedProbesANewContainerNow(t *testing.T) {
	c := corev1.Container{Name: "main", ReadinessProbe: probeSpec(30, 0, 1, 1)}
	f := newFixture(t, c, ok)
	f.clock.Step(time.Hour) // the kubelet did not just start: no jitter
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.m.AddPod(ctx, f.pod)
	waitFor(t, "the worker to wait for its period", func() bool { return f.clock.Waiters() == 1 })
	f.status.setContainer("skiff://a", f.clock.Now(), true)
	_, status, _ := f.status.PodStatus(f.pod.UID)
	f.m.StatusChanged(f.pod.UID, status)
	waitFor(t, "ready", func() bool { return f.m.Ready(f.pod.UID, &c, "skiff://a", true) })
	if n := f.handler.count(); n != 1 {
		t.Fatalf("%d probes", n)
	}
}

// waitFor waits (in real time, briefly) for the worker goroutine to get
// where cond says; the fake clock does not move meanwhile.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReadinessProbesRightAfterStartup: once the kubelet reports the
// container started, readiness runs at once, not a period later.
func TestReadinessProbesRightAfterStartup(t *testing.T) {
	c := corev1.Container{Name: "main", StartupProbe: probeSpec(1, 0, 1, 1), ReadinessProbe: probeSpec(30, 0, 1, 1)}
	f := newFixture(t, c, ok)
	f.clock.Step(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.m.AddPod(ctx, f.pod)
	waitFor(t, "both workers to wait for their periods", func() bool { return f.clock.Waiters() == 2 })
	f.status.setContainer("skiff://a", f.clock.Now(), false)
	_, status, _ := f.status.PodStatus(f.pod.UID)
	f.m.StatusChanged(f.pod.UID, status)
	// Readiness looks (and waits for startup); startup passes on its tick.
	waitFor(t, "readiness to see the container", func() bool { return f.m.result(Readiness, "skiff://a") == Failure })
	f.clock.Step(time.Second)
	waitFor(t, "started", func() bool { return f.m.Started(f.pod.UID, &c, "skiff://a", true) })
	f.status.setContainer("skiff://a", f.clock.Now().Add(-time.Second), true)
	_, status, _ = f.status.PodStatus(f.pod.UID)
	f.m.StatusChanged(f.pod.UID, status)
	waitFor(t, "ready", func() bool { return f.m.Ready(f.pod.UID, &c, "skiff://a", true) })
	// Later statuses do not probe again before the period.
	calls := f.handler.count()
	f.m.StatusChanged(f.pod.UID, status)
	time.Sleep(20 * time.Millisecond)
	if f.handler.count() != calls {
		t.Fatal("probed again on an unchanged status")
	}
}
