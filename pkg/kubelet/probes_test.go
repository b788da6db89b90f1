package kubelet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
	utilexec "k8s.io/utils/exec"

	"github.com/skiff/skiff/pkg/kubelet/prober"
)

// fakeRuntime records the CRI calls the kubelet makes; the methods it does
// not override panic (nil embedded interface), so a test notices calls it
// did not expect.
type fakeRuntime struct {
	internalapi.RuntimeService
	internalapi.ImageManagerService
	mu    sync.Mutex
	calls []string
	// execErr is what ExecSync answers (hooks).
	execErr error
	// created are the configs CreateContainer was given.
	created []*runtimeapi.ContainerConfig
}

func (f *fakeRuntime) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeRuntime) StopContainer(_ context.Context, id string, timeout int64) error {
	f.record("StopContainer %s %d", id, timeout)
	return nil
}

func (f *fakeRuntime) ExecSync(_ context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	f.record("ExecSync %s %s", id, strings.Join(cmd, " "))
	return nil, nil, f.execErr
}

func (f *fakeRuntime) CreateContainer(_ context.Context, sb string, cfg *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	f.record("CreateContainer %s %s attempt %d", sb, cfg.Metadata.Name, cfg.Metadata.Attempt)
	f.mu.Lock()
	f.created = append(f.created, cfg)
	f.mu.Unlock()
	return fmt.Sprintf("c%d", cfg.Metadata.Attempt), nil
}

func (f *fakeRuntime) StartContainer(_ context.Context, id string) error {
	f.record("StartContainer %s", id)
	return nil
}

func (f *fakeRuntime) ImageStatus(context.Context, *runtimeapi.ImageSpec, bool) (*runtimeapi.ImageStatusResponse, error) {
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "img"}}, nil
}

func (f *fakeRuntime) PodSandboxStatus(context.Context, string, bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.9"}}}, nil
}

// Close is on both embedded interfaces.
func (f *fakeRuntime) Close(context.Context) error { return nil }

func (f *fakeRuntime) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type kubeletFixture struct {
	k        *Kubelet
	rt       *fakeRuntime
	clock    *clocktesting.FakeClock
	recorder *record.FakeRecorder
	probe    func() prober.Outcome
}

func newKubelet(t *testing.T) *kubeletFixture {
	t.Helper()
	f := &kubeletFixture{rt: &fakeRuntime{}, clock: clocktesting.NewFakeClock(time.Now()), recorder: record.NewFakeRecorder(100)}
	f.probe = func() prober.Outcome { return prober.Outcome{Result: prober.Success} }
	f.k = New(Config{
		NodeName: "node", Runtime: f.rt, Images: f.rt, RootDir: t.TempDir(), Clock: f.clock,
		ProbeHandler: prober.HandlerFunc(func(context.Context, *corev1.Probe, prober.Target) (prober.Outcome, error) {
			return f.probe(), nil
		}),
	})
	f.k.recorder = f.recorder
	return f
}

func (f *kubeletFixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func probePodSpec(c corev1.Container, policy corev1.RestartPolicy) *corev1.Pod {
	grace := int64(30)
	c.Image = "busybox"
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"},
		Spec:       corev1.PodSpec{RestartPolicy: policy, TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{c}},
	}
}

// runningState is the runtime holding one running container "c0" (and,
// with previous, an exited attempt before it).
func runningState(started time.Time) *runtimeState {
	return &runtimeState{
		sandboxes: []*runtimeapi.PodSandbox{{Id: "sb", State: runtimeapi.PodSandboxState_SANDBOX_READY}},
		byName: map[string][]*runtimeapi.ContainerStatus{"main": {{
			Id: "c0", Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
			State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: started.UnixNano(),
		}}},
	}
}

func readyCondition(st corev1.PodStatus) corev1.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status
		}
	}
	return ""
}

func TestReadinessAndStartupDriveStatus(t *testing.T) {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}, PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
	cases := []struct {
		name    string
		c       corev1.Container
		started bool
		ready   bool
	}{
		{"no probes: ready once running", corev1.Container{Name: "main"}, true, true},
		{"readiness probe not run yet: not ready", corev1.Container{Name: "main", ReadinessProbe: probe}, true, false},
		{"startup probe not passed: neither started nor ready", corev1.Container{Name: "main", StartupProbe: probe}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newKubelet(t)
			pod := probePodSpec(tc.c, corev1.RestartPolicyAlways)
			st := f.k.podStatus(pod, runningState(f.clock.Now()))
			cs := st.ContainerStatuses[0]
			if *cs.Started != tc.started || cs.Ready != tc.ready {
				t.Fatalf("started %v ready %v; want %v %v", *cs.Started, cs.Ready, tc.started, tc.ready)
			}
			want := corev1.ConditionFalse
			if tc.ready {
				want = corev1.ConditionTrue
			}
			if got := readyCondition(st); got != want {
				t.Fatalf("Ready condition %s, want %s", got, want)
			}
		})
	}
	t.Run("readiness passes: ready", func(t *testing.T) {
		f := newKubelet(t)
		pod := probePodSpec(corev1.Container{Name: "main", ReadinessProbe: probe}, corev1.RestartPolicyAlways)
		f.syncProbes(t, pod, runningState(f.clock.Now()), func(st corev1.PodStatus) bool { return st.ContainerStatuses[0].Ready })
	})
}

// syncProbes runs the pod's probe workers (as a sync would start them) and
// recomputes the status, stepping the fake clock by a second at a time,
// until done says the status is as wanted.
func (f *kubeletFixture) syncProbes(t *testing.T, pod *corev1.Pod, st *runtimeState, done func(corev1.PodStatus) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.k.probes.AddPod(ctx, pod)
	deadline := time.Now().Add(10 * time.Second)
	for {
		status := f.k.podStatus(pod, st)
		f.k.statuses.setStatus(pod, status)
		f.k.probes.StatusChanged(pod.UID, status)
		if done(status) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never as wanted: %+v", status.ContainerStatuses)
		}
		f.clock.Step(time.Second)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLivenessFailureKillsAndRestarts(t *testing.T) {
	probeGrace := int64(7)
	liveness := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}},
		PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 2,
		TerminationGracePeriodSeconds: &probeGrace,
	}
	preStop := &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo bye"}}}}
	cases := []struct {
		name    string
		policy  corev1.RestartPolicy
		killMsg string
		calls   []string
	}{
		{"restartPolicy Always", corev1.RestartPolicyAlways, "Normal Killing Container main failed liveness probe, will be restarted",
			[]string{"ExecSync c0 sh -c echo bye", "StopContainer c0 7", "CreateContainer sb main attempt 1", "StartContainer c1"}},
		{"restartPolicy Never", corev1.RestartPolicyNever, "Normal Killing Container main failed liveness probe",
			[]string{"ExecSync c0 sh -c echo bye", "StopContainer c0 7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newKubelet(t)
			f.probe = func() prober.Outcome {
				return prober.Outcome{Result: prober.Failure, Output: "HTTP probe failed with statuscode: 500"}
			}
			pod := probePodSpec(corev1.Container{Name: "main", LivenessProbe: liveness, Lifecycle: preStop}, tc.policy)
			st := runningState(f.clock.Now())
			f.syncProbes(t, pod, st, func(corev1.PodStatus) bool {
				_, failed := f.k.probes.Failed(ContainerIDPrefix + "c0")
				return failed
			})
			sbConfig := f.k.sandboxConfig(pod, 0)
			if err := f.k.ensureRunning(context.Background(), pod, &pod.Spec.Containers[0], st, "sb", sbConfig, nil, false); err != nil {
				t.Fatal(err)
			}
			if got := f.rt.callList(); strings.Join(got, "\n") != strings.Join(tc.calls, "\n") {
				t.Fatalf("runtime calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.calls, "\n"))
			}
			events := strings.Join(f.events(), "\n")
			for _, want := range []string{"Warning Unhealthy Liveness probe failed: HTTP probe failed with statuscode: 500", tc.killMsg} {
				if !strings.Contains(events, want+"\n") && !strings.HasSuffix(events, want) {
					t.Errorf("events lack %q:\n%s", want, events)
				}
			}
			if tc.policy == corev1.RestartPolicyNever && strings.Contains(events, "will be restarted") {
				t.Errorf("a pod that never restarts was told it would:\n%s", events)
			}
		})
	}
}

func TestFailedPostStartHookKillsTheContainer(t *testing.T) {
	f := newKubelet(t)
	f.rt.execErr = utilexec.CodeExitError{Err: fmt.Errorf("command 'false' exited with 1: "), Code: 1}
	c := corev1.Container{Name: "main", Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}}}
	pod := probePodSpec(c, corev1.RestartPolicyAlways)
	err := f.k.startContainer(context.Background(), pod, &pod.Spec.Containers[0], 0, "sb", f.k.sandboxConfig(pod, 0), nil)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{"CreateContainer sb main attempt 0", "StartContainer c0", "ExecSync c0 false", "StopContainer c0 30"}
	if got := f.rt.callList(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("runtime calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	events := strings.Join(f.events(), "\n")
	for _, want := range []string{
		`Warning FailedPostStartHook Exec lifecycle hook ([false]) for Container "main" in Pod "web_default(uid-1)" failed - error: command 'false' exited with 1: , message: ""`,
		"Normal Killing FailedPostStartHook",
	} {
		if !strings.Contains(events, want) {
			t.Errorf("events lack %q:\n%s", want, events)
		}
	}
}
