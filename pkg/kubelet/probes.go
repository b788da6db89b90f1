package kubelet

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/kubelet/prober"
)

// minGracePeriod is the least time a container is given to stop (unless
// the pod is force-deleted), as upstream's kubelet.
const minGracePeriod = 2

// statusCache holds each pod as last synced and the status last computed
// for it; the probe workers read it to find their containers.
type statusCache struct {
	mu   sync.Mutex
	pods map[types.UID]cachedStatus
}

type cachedStatus struct {
	pod       *corev1.Pod
	status    corev1.PodStatus
	hasStatus bool
}

var _ prober.StatusSource = (*statusCache)(nil)

// PodStatus implements prober.StatusSource.
func (s *statusCache) PodStatus(uid types.UID) (*corev1.Pod, corev1.PodStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.pods[uid]
	if !ok || !c.hasStatus {
		return nil, corev1.PodStatus{}, false
	}
	return c.pod, c.status, true
}

// setPod records the pod as synced now (its deletionTimestamp matters to
// the probes).
func (s *statusCache) setPod(pod *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.pods[pod.UID]
	c.pod = pod
	s.pods[pod.UID] = c
}

func (s *statusCache) setStatus(pod *corev1.Pod, status corev1.PodStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pods[pod.UID] = cachedStatus{pod: pod, status: status, hasStatus: true}
}

func (s *statusCache) podIP(uid types.UID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[uid].status.PodIP
}

func (s *statusCache) forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pods, uid)
}

// podIPOf is the address hooks reach the pod at.
func (k *Kubelet) podIPOf(ctx context.Context, pod *corev1.Pod, sbID string) string {
	if pod.Spec.HostNetwork {
		return k.cfg.NodeIP
	}
	if ip := k.statuses.podIP(pod.UID); ip != "" {
		return ip
	}
	if sbID == "" {
		return ""
	}
	resp, err := k.cfg.Runtime.PodSandboxStatus(ctx, sbID, false)
	if err != nil {
		return ""
	}
	return resp.GetStatus().GetNetwork().GetIp()
}

// killForProbe kills a running container whose liveness or startup probe
// failed and, unless the pod never restarts containers, starts the next
// one in the same sync, as upstream (back-off counts from the previous
// exit, if there was one).
func (k *Kubelet) killForProbe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind prober.Kind, st *runtimeState, sbID string, sbConfig *runtimeapi.PodSandboxConfig, volumes map[string]string, sidecar bool) error {
	list := st.byName[c.Name]
	latest := list[0]
	spec := c.LivenessProbe
	if kind == prober.Startup {
		spec = c.StartupProbe
	}
	restart := sidecar || pod.Spec.RestartPolicy != corev1.RestartPolicyNever
	msg := fmt.Sprintf("Container %s failed %s probe", c.Name, lower(kind.String()))
	if restart {
		msg += ", will be restarted"
	}
	grace := int64(minGracePeriod)
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		grace = *pod.DeletionGracePeriodSeconds
	case spec != nil && spec.TerminationGracePeriodSeconds != nil:
		grace = *spec.TerminationGracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if err := k.killContainer(ctx, pod, c, latest.Id, msg, grace, false); err != nil {
		return err
	}
	if !restart {
		return nil
	}
	if len(list) > 1 && list[1].State == runtimeapi.ContainerState_CONTAINER_EXITED && k.inBackoff(pod, c, list[1]) {
		return nil
	}
	return k.startContainer(ctx, pod, c, latest.Metadata.Attempt+1, sbID, sbConfig, volumes)
}

// killContainer stops a running container as upstream's kubelet does: a
// Killing event with message, the preStop hook within the grace period,
// then a stop with what is left of it. A kill the kubelet decided on
// (probe, hook) leaves the container at least minGracePeriod; a pod's
// deletion (exact) gives exactly what its grace period has left.
func (k *Kubelet) killContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id, message string, grace int64, exact bool) error {
	if c != nil {
		k.event(pod, c, corev1.EventTypeNormal, "Killing", message)
	}
	if grace > 0 {
		grace -= k.runPreStop(ctx, pod, c, id, grace)
	}
	switch {
	case !exact && grace < minGracePeriod:
		grace = minGracePeriod
	case grace < 0:
		grace = 0
	}
	if err := k.cfg.Runtime.StopContainer(ctx, id, grace); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

// runPreStop runs the container's preStop hook, giving up after grace
// seconds, and returns the seconds it took.
func (k *Kubelet) runPreStop(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, grace int64) int64 {
	if c == nil || c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return 0
	}
	start := k.cfg.Clock.Now()
	hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
	defer cancel()
	t := prober.Target{Pod: pod, Container: c, ContainerID: id, PodIP: k.podIPOf(ctx, pod, "")}
	if _, err := k.hooks.Run(hctx, t, c.Lifecycle.PreStop); err != nil {
		k.cfg.Log.Warn("preStop hook", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "err", err)
		// As upstream, the event leaves out the hook's output (it may hold
		// secrets).
		k.event(pod, c, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed")
	}
	return int64(k.cfg.Clock.Since(start).Seconds())
}

// runPostStart runs the container's postStart hook right after its start;
// when the hook fails the container is killed (FailedPostStartHook) and
// restarted as its restart policy says.
func (k *Kubelet) runPostStart(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id, sbID string) error {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return nil
	}
	t := prober.Target{Pod: pod, Container: c, ContainerID: id, PodIP: k.podIPOf(ctx, pod, sbID)}
	msg, err := k.hooks.Run(ctx, t, c.Lifecycle.PostStart)
	if err == nil {
		return nil
	}
	k.event(pod, c, corev1.EventTypeWarning, "FailedPostStartHook", msg)
	grace := int64(minGracePeriod)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if kerr := k.killContainer(ctx, pod, c, id, "FailedPostStartHook", grace, false); kerr != nil {
		return kerr
	}
	return &waitingError{reason: "PostStartHookError", err: fmt.Errorf("postStart hook: %w", err)}
}
