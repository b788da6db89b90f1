package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/kubelet/sysctl"
	"github.com/skiff/skiff/pkg/mounts"
	"github.com/skiff/skiff/pkg/registry/pod"
)

// Waiting reasons kubectl shows, as upstream's kubelet reports them.
const (
	reasonContainerCreating = "ContainerCreating"
	reasonPodInitializing   = "PodInitializing"
	reasonCrashLoopBackOff  = "CrashLoopBackOff"
	reasonErrImagePull      = "ErrImagePull"
	reasonImagePullBackOff  = "ImagePullBackOff"
	reasonErrImageNeverPull = "ErrImageNeverPull"
	reasonCreateError       = "CreateContainerError"
	reasonConfigError       = "CreateContainerConfigError"
)

// runtimeState is what the runtime holds for one pod.
type runtimeState struct {
	sandboxes []*runtimeapi.PodSandbox
	// podIP is the ready sandbox's address on the pod network (filled in
	// by updateStatus).
	podIP string
	// byName holds each container name's CRI containers, newest first.
	byName map[string][]*runtimeapi.ContainerStatus
}

func (k *Kubelet) runtimeStateOf(ctx context.Context, uid types.UID) (*runtimeState, error) {
	sel := map[string]string{labelPodUID: string(uid)}
	sbs, err := k.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	cs, err := k.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	st := &runtimeState{sandboxes: sbs, byName: map[string][]*runtimeapi.ContainerStatus{}}
	for _, c := range cs {
		resp, err := k.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, err
		}
		name := c.Labels[labelContainerName]
		st.byName[name] = append(st.byName[name], resp.Status)
	}
	for _, list := range st.byName {
		sort.Slice(list, func(i, j int) bool { return list[i].Metadata.Attempt > list[j].Metadata.Attempt })
	}
	return st, nil
}

// readySandbox returns the pod's ready sandbox, if any.
func (s *runtimeState) readySandbox() *runtimeapi.PodSandbox {
	for _, sb := range s.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			return sb
		}
	}
	return nil
}

func (s *runtimeState) latest(name string) *runtimeapi.ContainerStatus {
	if l := s.byName[name]; len(l) > 0 {
		return l[0]
	}
	return nil
}

// syncPod drives one pod toward its spec. It returns true when the pod is
// gone for good and its worker can end.
func (k *Kubelet) syncPod(ctx context.Context, uid types.UID, ns, name string) (bool, error) {
	pod, err := k.pods.Pods(ns).Get(name)
	if err != nil || pod.UID != uid {
		pod = nil
	}
	st, err := k.runtimeStateOf(ctx, uid)
	if err != nil {
		return false, err
	}
	if pod != nil {
		k.statuses.setPod(pod)
	}
	if pod == nil {
		// Deleted (or force-deleted) from the API: nothing to report to.
		return true, k.teardown(ctx, uid, st, 0, nil)
	}
	if pod.DeletionTimestamp != nil {
		grace := int64(0)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		if err := k.teardown(ctx, uid, st, grace, pod); err != nil {
			return false, err
		}
		zero := int64(0)
		err := k.cfg.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return false, err
		}
		return true, nil
	}
	k.mu.Lock()
	if _, ok := k.startTimes[uid]; !ok {
		k.startTimes[uid] = k.cfg.Clock.Now()
	}
	k.mu.Unlock()
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// Finished: its sandbox stops, its containers stay for their logs,
		// its volumes are no longer updated.
		k.objects.UnregisterPod(uid)
		for _, sb := range st.sandboxes {
			if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				if err := k.cfg.Runtime.StopPodSandbox(ctx, sb.Id); err != nil {
					return false, err
				}
			}
		}
		return false, nil
	}
	if k.pastActiveDeadline(pod) {
		return false, k.failForDeadline(ctx, pod)
	}
	if len(st.sandboxes) == 0 {
		// Not started yet: admit it first, as upstream's kubelet does.
		if msg := k.cfg.Sysctls.Admit(pod); msg != "" {
			return false, k.rejectPod(ctx, pod, sysctl.ForbiddenReason, msg)
		}
		if pod.Status.StartTime == nil && k.hostPortConflict(pod) {
			return false, k.rejectPod(ctx, pod, NodePortsReason, "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports")
		}
	}
	// Probe workers live as long as the pod's worker (ctx).
	k.probes.AddPod(ctx, pod)
	// Its volumes' sources are watched from here until it finishes.
	k.objects.RegisterPod(pod)
	runErr := k.runPod(ctx, pod, st)
	// Report what is, whatever happened.
	if st, err = k.runtimeStateOf(ctx, uid); err != nil {
		return false, err
	}
	if err := k.updateStatus(ctx, pod, st); err != nil {
		return false, err
	}
	return false, runErr
}

// runPod ensures the sandbox, runs init containers in order, then the
// app containers, restarting exited ones as the restart policy says.
func (k *Kubelet) runPod(ctx context.Context, pod *corev1.Pod, st *runtimeState) error {
	sb := st.readySandbox()
	if sb == nil {
		if len(st.sandboxes) > 0 {
			// The sandbox died (or the node rebooted): start over in a new
			// one, as upstream does.
			if err := k.teardown(ctx, pod.UID, st, 0, pod); err != nil {
				return err
			}
			st.byName = map[string][]*runtimeapi.ContainerStatus{}
		}
		id, err := k.runSandbox(ctx, pod, uint32(len(st.sandboxes)))
		if err != nil {
			return fmt.Errorf("run sandbox: %w", err)
		}
		resp, err := k.cfg.Runtime.PodSandboxStatus(ctx, id, false)
		if err != nil {
			return err
		}
		sb = &runtimeapi.PodSandbox{Id: id, Metadata: resp.Status.Metadata, State: resp.Status.State}
	}
	sbConfig := k.sandboxConfig(pod, 0)
	volumes, err := k.setupVolumes(ctx, pod)
	if err != nil {
		// The sync is retried; the recorder aggregates the repeats.
		k.event(pod, nil, corev1.EventTypeWarning, "FailedMount", err.Error())
		return fmt.Errorf("volumes: %w", err)
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if isSidecar(c) {
			if err := k.ensureRunning(ctx, pod, c, st, sb.Id, sbConfig, volumes, true); err != nil {
				return err
			}
			continue
		}
		latest := st.latest(c.Name)
		switch {
		case latest == nil:
			return k.startContainer(ctx, pod, c, 0, sb.Id, sbConfig, volumes)
		case latest.State == runtimeapi.ContainerState_CONTAINER_EXITED && latest.ExitCode == 0:
			continue
		case latest.State == runtimeapi.ContainerState_CONTAINER_EXITED:
			if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return nil
			}
			if k.inBackoff(pod, c, latest) {
				return nil
			}
			return k.startContainer(ctx, pod, c, latest.Metadata.Attempt+1, sb.Id, sbConfig, volumes)
		default:
			// Still running: later init containers wait.
			return nil
		}
	}
	// App containers start independently: one that cannot (its image
	// cannot be pulled, say) does not hold back the others. Failures the
	// container's status shows (waiting reasons) are not sync errors.
	var errs []error
	for i := range pod.Spec.Containers {
		err := k.ensureRunning(ctx, pod, &pod.Spec.Containers[i], st, sb.Id, sbConfig, volumes, false)
		var we *waitingError
		if err != nil && !errors.As(err, &we) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// ensureRunning starts a container that never ran, and restarts one that
// exited when the restart policy asks for it and its back-off has passed.
func (k *Kubelet) ensureRunning(ctx context.Context, pod *corev1.Pod, c *corev1.Container, st *runtimeState, sbID string, sbConfig *runtimeapi.PodSandboxConfig, volumes map[string]string, sidecar bool) error {
	latest := st.latest(c.Name)
	if latest == nil {
		return k.startContainer(ctx, pod, c, 0, sbID, sbConfig, volumes)
	}
	if latest.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		if kind, failed := k.probes.Failed(ContainerIDPrefix + latest.Id); failed {
			return k.killForProbe(ctx, pod, c, kind, st, sbID, sbConfig, volumes, sidecar)
		}
		return nil
	}
	if latest.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		return nil
	}
	if !sidecar && !shouldRestart(pod.Spec.RestartPolicy, latest.ExitCode) {
		return nil
	}
	if k.inBackoff(pod, c, latest) {
		return nil
	}
	return k.startContainer(ctx, pod, c, latest.Metadata.Attempt+1, sbID, sbConfig, volumes)
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyAlways:
		return true
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return false
}

// inBackoff reports whether a container that exited must still wait before
// its restart (CrashLoopBackOff); otherwise it starts the next back-off.
func (k *Kubelet) inBackoff(pod *corev1.Pod, c *corev1.Container, latest *runtimeapi.ContainerStatus) bool {
	key := podKey(pod, c.Name)
	finished := time.Unix(0, latest.FinishedAt)
	if k.backoff.IsInBackOffSince(key, finished) {
		return true
	}
	k.backoff.Next(key, finished)
	k.event(pod, c, corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID))
	return false
}

// backoffRemaining is how long a crashing container still waits.
func (k *Kubelet) backoffRemaining(pod *corev1.Pod, c *corev1.Container) time.Duration {
	return k.backoff.Get(podKey(pod, c.Name))
}

// startContainer pulls the image as the pull policy says, then creates
// and starts attempt number attempt of container c.
func (k *Kubelet) startContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt uint32, sbID string, sbConfig *runtimeapi.PodSandboxConfig, volumes map[string]string) error {
	if err := k.ensureImage(ctx, pod, c); err != nil {
		return err
	}
	cfg, err := k.runConfig(ctx, pod, c, attempt, sbID, volumes)
	if err != nil {
		k.setPullError(pod, c, &waitingError{reason: reasonConfigError, err: err})
		k.event(pod, c, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return err
	}
	id, err := k.cfg.Runtime.CreateContainer(ctx, sbID, cfg, sbConfig)
	if err != nil {
		k.setPullError(pod, c, &waitingError{reason: reasonCreateError, err: err})
		k.event(pod, c, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return err
	}
	k.setPullError(pod, c, nil)
	k.event(pod, c, corev1.EventTypeNormal, "Created", "Created container: "+c.Name)
	if err := k.cfg.Runtime.StartContainer(ctx, id); err != nil {
		k.event(pod, c, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return err
	}
	k.event(pod, c, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	return k.runPostStart(ctx, pod, c, id, sbID)
}

// runConfig writes the pod's /etc/hosts and builds the container's CRI
// config; a failure of either is the container's config error.
func (k *Kubelet) runConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt uint32, sbID string, volumes map[string]string) (*runtimeapi.ContainerConfig, error) {
	etcHosts, err := k.writeEtcHosts(ctx, pod, sbID)
	if err != nil {
		return nil, err
	}
	if pod.Status.PodIP == "" {
		// The status carrying the sandbox's address may not be written
		// yet; the downward API (status.podIP) must see it all the same,
		// as upstream's kubelet passes the sandbox's IPs.
		if ip := k.podIPOf(ctx, pod, sbID); ip != "" {
			withIP := *pod
			withIP.Status.PodIP, withIP.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
			pod = &withIP
		}
	}
	return k.containerConfig(ctx, pod, c, attempt, volumes, etcHosts)
}

// waitingError is a failure shown as the container's waiting reason.
type waitingError struct {
	reason string
	err    error
}

func (e *waitingError) Error() string { return e.err.Error() }

func (k *Kubelet) setPullError(pod *corev1.Pod, c *corev1.Container, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		delete(k.pullErrors, podKey(pod, c.Name))
	} else {
		k.pullErrors[podKey(pod, c.Name)] = err
	}
}

func (k *Kubelet) waitingErrorOf(pod *corev1.Pod, name string) *waitingError {
	k.mu.Lock()
	defer k.mu.Unlock()
	var we *waitingError
	if errors.As(k.pullErrors[podKey(pod, name)], &we) {
		return we
	}
	return nil
}

// ensureImage makes the container's image present as its pull policy
// says, with back-off between failed pulls (ImagePullBackOff).
func (k *Kubelet) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) error {
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	present := false
	if c.ImagePullPolicy != corev1.PullAlways {
		resp, err := k.cfg.Images.ImageStatus(ctx, spec, false)
		if err != nil {
			return err
		}
		present = resp.Image != nil
	}
	if present {
		k.event(pod, c, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		return nil
	}
	if c.ImagePullPolicy == corev1.PullNever {
		err := &waitingError{reason: reasonErrImageNeverPull, err: fmt.Errorf("Container image %q is not present with pull policy of Never", c.Image)}
		k.setPullError(pod, c, err)
		k.event(pod, c, corev1.EventTypeWarning, reasonErrImageNeverPull, err.Error())
		return err
	}
	key := "pull/" + podKey(pod, c.Name)
	if k.pullBackoff.IsInBackOffSinceUpdate(key, k.pullBackoff.Clock.Now()) {
		we := &waitingError{reason: reasonImagePullBackOff, err: fmt.Errorf("Back-off pulling image %q", c.Image)}
		if prev := k.waitingErrorOf(pod, c.Name); prev == nil || prev.reason != reasonImagePullBackOff {
			k.event(pod, c, corev1.EventTypeNormal, "BackOff", we.Error())
			k.event(pod, c, corev1.EventTypeWarning, "Failed", "Error: "+reasonImagePullBackOff)
		}
		k.setPullError(pod, c, we)
		return we
	}
	k.event(pod, c, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	start := k.cfg.Clock.Now()
	auth, err := k.pullAuth(ctx, pod, c.Image)
	if err != nil {
		return err
	}
	if _, err := k.cfg.Images.PullImage(ctx, spec, auth, nil); err != nil {
		k.pullBackoff.Next(key, k.pullBackoff.Clock.Now())
		we := &waitingError{reason: reasonErrImagePull, err: err}
		k.setPullError(pod, c, we)
		k.event(pod, c, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
		k.event(pod, c, corev1.EventTypeWarning, "Failed", "Error: "+reasonErrImagePull)
		return we
	}
	k.pullBackoff.Reset(key)
	took := k.cfg.Clock.Since(start).Round(time.Millisecond)
	k.event(pod, c, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, took))
	return nil
}

// teardown stops the pod's containers, all at once as upstream does
// (grace seconds for each, its preStop hook included), and removes its
// sandboxes and volumes.
func (k *Kubelet) teardown(ctx context.Context, uid types.UID, st *runtimeState, grace int64, pod *corev1.Pod) error {
	if err := k.stopContainers(ctx, st, grace, pod); err != nil {
		return err
	}
	for _, sb := range st.sandboxes {
		if err := k.cfg.Runtime.StopPodSandbox(ctx, sb.Id); err != nil {
			return err
		}
		if err := k.cfg.Runtime.RemovePodSandbox(ctx, sb.Id); err != nil {
			return err
		}
	}
	// Volumes first: removing the directory with a volume still mounted
	// in it would delete the volume's data.
	if err := k.volumes.TearDownPod(ctx, uid); err != nil {
		return fmt.Errorf("tear down volumes: %w", err)
	}
	if err := mounts.UnmountUnder(k.podDir(uid)); err != nil {
		return fmt.Errorf("tear down volumes: %w", err)
	}
	return os.RemoveAll(k.podDir(uid))
}

// stopPod stops the pod's containers and its sandboxes, keeping them (and
// their logs) for its status.
func (k *Kubelet) stopPod(ctx context.Context, pod *corev1.Pod, st *runtimeState, grace int64) error {
	if err := k.stopContainers(ctx, st, grace, pod); err != nil {
		return err
	}
	for _, sb := range st.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			if err := k.cfg.Runtime.StopPodSandbox(ctx, sb.Id); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopContainers stops the running containers: the regular ones at once,
// then, once they are gone, the sidecars (restartable init containers),
// as upstream's kubelet does, so that what the regular containers'
// preStop hooks reach through a sidecar is still there.
func (k *Kubelet) stopContainers(ctx context.Context, st *runtimeState, grace int64, pod *corev1.Pod) error {
	err := k.stopRunning(ctx, st, grace, pod, func(name string) bool { return !sidecarNamed(pod, name) })
	if err != nil {
		return err
	}
	return k.stopRunning(ctx, st, grace, pod, func(name string) bool { return sidecarNamed(pod, name) })
}

// sidecarNamed reports whether the named container is a restartable
// init container of pod (false without a pod).
func sidecarNamed(pod *corev1.Pod, name string) bool {
	if pod == nil {
		return false
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return isSidecar(&pod.Spec.InitContainers[i])
		}
	}
	return false
}

// stopRunning stops, all at once, the running containers whose names
// pick accepts.
func (k *Kubelet) stopRunning(ctx context.Context, st *runtimeState, grace int64, pod *corev1.Pod, pick func(name string) bool) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for name, list := range st.byName {
		if !pick(name) {
			continue
		}
		for _, c := range list {
			if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if pod != nil {
					err = k.killContainer(ctx, pod, specContainer(pod, name), c.Id, "Stopping container "+name, grace, true)
				} else {
					err = k.cfg.Runtime.StopContainer(ctx, c.Id, grace)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

func specContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// updateStatus writes the pod's status if it changed.
func (k *Kubelet) updateStatus(ctx context.Context, pod *corev1.Pod, st *runtimeState) error {
	// Only the status needs the sandbox's address: ask for it here, not
	// on every look at the runtime.
	if sb := st.readySandbox(); sb != nil && !pod.Spec.HostNetwork {
		resp, err := k.cfg.Runtime.PodSandboxStatus(ctx, sb.Id, false)
		if err != nil {
			return err
		}
		st.podIP = resp.GetStatus().GetNetwork().GetIp()
	}
	status := k.podStatus(pod, st)
	k.statuses.setStatus(pod, status)
	k.probes.StatusChanged(pod.UID, status)
	if apiequality.Semantic.DeepEqual(status, pod.Status) {
		return nil
	}
	p := pod.DeepCopy()
	p.Status = status
	_, err := k.cfg.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// The informer brings the new version; the next sync retries.
		return nil
	}
	return err
}

// rejectPod fails a pod the node does not admit, as upstream's kubelet
// does: a Warning event and phase Failed with reason and "Pod was
// rejected: " message; conditions other writers own are kept.
func (k *Kubelet) rejectPod(ctx context.Context, p *corev1.Pod, reason, msg string) error {
	k.event(p, nil, corev1.EventTypeWarning, reason, msg)
	status := corev1.PodStatus{Phase: corev1.PodFailed, Reason: reason, Message: "Pod was rejected: " + msg,
		QOSClass: pod.QOSClass(&p.Spec), StartTime: p.Status.StartTime}
	if status.StartTime == nil {
		now := metav1.NewTime(k.cfg.Clock.Now().Truncate(time.Second))
		status.StartTime = &now
	}
	for _, c := range p.Status.Conditions {
		if !kubeletConditions[c.Type] {
			status.Conditions = append(status.Conditions, c)
		}
	}
	rejected := p.DeepCopy()
	rejected.Status = status
	_, err := k.cfg.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, rejected, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func lower(s string) string { return strings.ToLower(s) }
