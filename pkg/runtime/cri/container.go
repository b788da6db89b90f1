package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/runtime/images"
	"github.com/skiff/skiff/pkg/runtime/runc"
	"github.com/skiff/skiff/pkg/runtime/sandbox"
)

// CreateContainer implements RuntimeServiceServer: it mounts the root
// filesystem, builds the OCI spec and creates (without starting) the
// container.
func (s *Service) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	img, err := s.cfg.Images.Get(cfg.GetImage().GetImage())
	if err != nil {
		return nil, grpcstatus.Errorf(codes.NotFound, "image %q not present: %v", cfg.GetImage().GetImage(), err)
	}
	id := newID()
	dir := s.containerDir(id)
	rootfs, err := runc.MountRootfs(dir, s.cfg.Images.LayerDirs(img))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*runtimeapi.CreateContainerResponse, error) {
		_ = runc.UnmountRootfs(dir)
		return nil, err
	}
	proc, err := processSpec(cfg, img, rootfs)
	if err != nil {
		return fail(err)
	}
	sbx := sandbox.Sandbox{Dir: s.sandboxDir(sb.ID)}
	var host []specs.LinuxNamespaceType
	if !podNetwork(sb.config) {
		host = append(host, specs.NetworkNamespace)
	}
	spec := runc.BuildSpec(runc.ContainerSpec{
		HostNamespaces: host,
		Process:        proc,
		Rootfs:         rootfs,
		ReadOnlyRootfs: cfg.GetLinux().GetSecurityContext().GetReadonlyRootfs(),
		Mounts:         mounts(cfg, sbx),
		JoinNamespaces: map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: sbx.NamespacePath("net"),
			specs.IPCNamespace:     sbx.NamespacePath("ipc"),
			specs.UTSNamespace:     sbx.NamespacePath("uts"),
		},
		Resources:   resources(cfg.GetLinux().GetResources()),
		CgroupsPath: filepath.Join(sb.Cgroup, id),
	})
	// libcontainer keeps no state before a container starts, so the spec
	// waits on disk until StartContainer.
	if err := saveRecord(filepath.Join(dir, "spec.json"), spec); err != nil {
		return fail(err)
	}
	logPath := ""
	if p := cfg.GetLogPath(); p != "" && sb.config.GetLogDirectory() != "" {
		logPath = filepath.Join(sb.config.GetLogDirectory(), p)
	}
	ref := img.ID
	if len(img.RepoDigests) > 0 {
		ref = img.RepoDigests[0]
	}
	rec := &containerRecord{ID: id, SandboxID: sb.ID, ImageID: img.ID, ImageRef: ref, State: stateCreated, CreatedAt: s.now(), LogPath: logPath, config: cfg}
	if err := s.saveContainer(rec); err != nil {
		return fail(err)
	}
	s.mu.Lock()
	s.containers[id] = rec
	s.mu.Unlock()
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// processSpec merges the container config with the image config as the
// kubelet's command/args rules require: command replaces the entrypoint
// (and drops the image's cmd), args replace the cmd.
func processSpec(cfg *runtimeapi.ContainerConfig, img images.Image, rootfs string) (runc.ProcessSpec, error) {
	args := img.Config.Entrypoint
	cmd := img.Config.Cmd
	if len(cfg.GetCommand()) > 0 {
		args, cmd = cfg.GetCommand(), nil
	}
	if len(cfg.GetArgs()) > 0 {
		cmd = cfg.GetArgs()
	}
	args = append(append([]string{}, args...), cmd...)
	if len(args) == 0 {
		return runc.ProcessSpec{}, errors.New("no command specified: the image has no entrypoint or cmd and the container sets none")
	}
	env := append([]string{}, img.Config.Env...)
	for _, kv := range cfg.GetEnvs() {
		env = setEnv(env, kv.GetKey(), string(kv.GetValue()))
	}
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	cwd := cfg.GetWorkingDir()
	if cwd == "" {
		cwd = img.Config.WorkingDir
	}
	sc := cfg.GetLinux().GetSecurityContext()
	uid, gid, err := resolveUser(sc, img.Config.User, rootfs)
	if err != nil {
		return runc.ProcessSpec{}, err
	}
	p := runc.ProcessSpec{Args: args, Env: env, Cwd: cwd, UID: uid, GID: gid, Privileged: sc.GetPrivileged(), NoNewPrivileges: sc.GetNoNewPrivs(), Terminal: cfg.GetTty()}
	for _, g := range sc.GetSupplementalGroups() {
		p.AdditionalGIDs = append(p.AdditionalGIDs, uint32(g))
	}
	if c := sc.GetCapabilities(); c != nil && !sc.GetPrivileged() {
		p.Capabilities = adjustCapabilities(c.GetAddCapabilities(), c.GetDropCapabilities())
	}
	return p, nil
}

func setEnv(env []string, key, value string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, key+"=") {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// adjustCapabilities applies CRI add/drop lists to the default set.
func adjustCapabilities(add, drop []string) []string {
	norm := func(c string) string {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		return c
	}
	caps := runc.DefaultCapabilities()
	for _, d := range drop {
		if strings.EqualFold(d, "ALL") {
			caps = nil
			continue
		}
		caps = slices.DeleteFunc(caps, func(c string) bool { return c == norm(d) })
	}
	for _, a := range add {
		if strings.EqualFold(a, "ALL") {
			return runc.AllCapabilities()
		}
		if !slices.Contains(caps, norm(a)) {
			caps = append(caps, norm(a))
		}
	}
	return caps
}

// resolveUser picks the uid and gid the process runs as: the security
// context's, else the image's USER (numeric or a name from the image's
// /etc/passwd and /etc/group).
func resolveUser(sc *runtimeapi.LinuxContainerSecurityContext, imageUser, rootfs string) (uint32, uint32, error) {
	var uid, gid uint32
	user, group, _ := strings.Cut(imageUser, ":")
	if sc.GetRunAsUser() != nil {
		uid, user = uint32(sc.GetRunAsUser().GetValue()), ""
	} else if sc.GetRunAsUsername() != "" {
		user = sc.GetRunAsUsername()
	}
	if user != "" {
		if n, err := strconv.ParseUint(user, 10, 32); err == nil {
			uid = uint32(n)
		} else {
			u, g, ok := lookupDB(filepath.Join(rootfs, "etc/passwd"), user, 2, 3)
			if !ok {
				return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", user)
			}
			uid, gid = u, g
		}
		if group == "" && sc.GetRunAsGroup() == nil {
			if _, g, ok := lookupByID(filepath.Join(rootfs, "etc/passwd"), uid); ok {
				gid = g
			}
		}
	}
	if sc.GetRunAsGroup() != nil {
		gid = uint32(sc.GetRunAsGroup().GetValue())
	} else if group != "" {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			gid = uint32(n)
		} else if g, _, ok := lookupDB(filepath.Join(rootfs, "etc/group"), group, 2, 2); ok {
			gid = g
		} else {
			return 0, 0, fmt.Errorf("unable to find group %s: no matching entries in group file", group)
		}
	}
	return uid, gid, nil
}

// lookupDB finds name in a passwd-style file and returns two numeric fields.
func lookupDB(path, name string, f1, f2 int) (uint32, uint32, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) > f2 && fields[0] == name {
			a, err1 := strconv.ParseUint(fields[f1], 10, 32)
			c, err2 := strconv.ParseUint(fields[f2], 10, 32)
			if err1 == nil && err2 == nil {
				return uint32(a), uint32(c), true
			}
		}
	}
	return 0, 0, false
}

// lookupByID finds a uid in a passwd file and returns its uid and gid.
func lookupByID(path string, uid uint32) (uint32, uint32, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) > 3 && fields[2] == strconv.FormatUint(uint64(uid), 10) {
			if g, err := strconv.ParseUint(fields[3], 10, 32); err == nil {
				return uid, uint32(g), true
			}
		}
	}
	return 0, 0, false
}

// mounts are the container's volumes, then the sandbox's /etc files unless
// a volume covers them.
func mounts(cfg *runtimeapi.ContainerConfig, sb sandbox.Sandbox) []specs.Mount {
	var out []specs.Mount
	covered := map[string]bool{}
	for _, m := range cfg.GetMounts() {
		opts := []string{"rbind"}
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			opts = append(opts, "rslave")
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			opts = append(opts, "rshared")
		default:
			opts = append(opts, "rprivate")
		}
		if m.GetReadonly() {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		out = append(out, specs.Mount{Destination: m.GetContainerPath(), Type: "bind", Source: m.GetHostPath(), Options: opts})
		covered[filepath.Clean(m.GetContainerPath())] = true
	}
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		dst := "/etc/" + f
		if !covered[dst] {
			out = append(out, runc.BindMount(sb.File(f), dst, false))
		}
	}
	return out
}

// resources converts CRI resources to OCI cgroup settings.
func resources(r *runtimeapi.LinuxContainerResources) *specs.LinuxResources {
	if r == nil {
		return nil
	}
	out := &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{}}
	if v := r.GetCpuShares(); v > 0 {
		shares := uint64(v)
		out.CPU.Shares = &shares
	}
	if v := r.GetCpuQuota(); v > 0 {
		out.CPU.Quota = &v
	}
	if v := r.GetCpuPeriod(); v > 0 {
		period := uint64(v)
		out.CPU.Period = &period
	}
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		out.Memory.Limit = &v
		// No swap beyond the limit.
		out.Memory.Swap = &v
	}
	if v := r.GetCpusetCpus(); v != "" {
		out.CPU.Cpus = v
	}
	return out
}

func (s *Service) saveContainer(rec *containerRecord) error {
	if err := rec.encode(); err != nil {
		return err
	}
	return saveRecord(s.containerDir(rec.ID)+"/container.json", rec)
}

func (s *Service) container(id string) (*containerRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.containers[id]; ok {
		return c, nil
	}
	// IDs may be abbreviated, as crictl allows.
	var match *containerRecord
	for cid, c := range s.containers {
		if len(id) >= 12 && strings.HasPrefix(cid, id) {
			match = c
		}
	}
	if match != nil {
		return match, nil
	}
	return nil, notFound("container", id)
}

// StartContainer implements RuntimeServiceServer.
func (s *Service) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	rec, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	state := rec.State
	s.mu.Unlock()
	if state != stateCreated {
		return nil, fmt.Errorf("container %s is %s, not created", rec.ID, state)
	}
	spec := &specs.Spec{}
	b, err := os.ReadFile(filepath.Join(s.containerDir(rec.ID), "spec.json"))
	if err == nil {
		err = json.Unmarshal(b, spec)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s spec: %w", rec.ID, err)
	}
	c, err := s.runner.Create(rec.ID, spec)
	if err != nil {
		return nil, err
	}
	out, err := newLogWriter(rec.LogPath)
	if err != nil {
		return nil, err
	}
	// The baseline is taken before the container's cgroup exists (zero)
	// or, for a cgroup that somehow outlived an earlier start, from it.
	oomAtStart := s.oomKills(rec)
	p, hub, drained, err := s.startProcess(c, spec.Process, rec, out)
	if err != nil {
		out.Close()
		s.finish(rec, 128, "StartError", err.Error())
		return nil, err
	}
	pid, _ := p.Pid()
	done := make(chan struct{})
	s.mu.Lock()
	rec.State, rec.StartedAt, rec.Pid, rec.OOMKillsAtStart = stateRunning, s.now(), pid, oomAtStart
	s.exited[rec.ID] = done
	s.logs[rec.ID] = out
	s.attach[rec.ID] = hub
	s.mu.Unlock()
	if err := s.saveContainer(rec); err != nil {
		return nil, err
	}
	go func() {
		st, _ := p.Wait()
		<-drained
		s.mu.Lock()
		delete(s.logs, rec.ID)
		delete(s.attach, rec.ID)
		s.mu.Unlock()
		hub.close()
		out.Close()
		code := runc.ExitCode(st)
		s.finish(rec, code, terminationReason(code, oomAtStart, s.oomKills(rec)), "")
		close(done)
	}()
	return &runtimeapi.StartContainerResponse{}, nil
}

// startProcess starts a container's main process with its output going to
// the log (and to attached clients, through the returned hub): over pipes,
// or over a pseudo-terminal for containers with a TTY, whose output is
// copied until drained is closed. The runtime holds the process's input
// (a pipe, or the terminal) for containers that ask for stdin.
func (s *Service) startProcess(c *libcontainer.Container, proc *specs.Process, rec *containerRecord, out *logWriter) (*libcontainer.Process, *attachHub, <-chan struct{}, error) {
	drained := make(chan struct{})
	if proc.Terminal {
		parent, child, err := consoleSocket()
		if err != nil {
			return nil, nil, nil, err
		}
		defer parent.Close()
		p, err := runc.Start(c, proc, runc.Stdio{ConsoleSocket: child})
		child.Close()
		if err != nil {
			return nil, nil, nil, err
		}
		terminal, err := receiveFile(parent)
		if err != nil {
			_ = p.Signal(unix.SIGKILL)
			_, _ = p.Wait()
			return nil, nil, nil, fmt.Errorf("receive the terminal of container %s: %w", rec.ID, err)
		}
		hub := newAttachHub(nil, false, terminal)
		stdout := hub.output("stdout", out.Stream("stdout"))
		go func() {
			defer close(drained)
			// Ends with EIO once every holder of the terminal has exited.
			_, _ = io.Copy(stdout, terminal)
		}()
		return p, hub, drained, nil
	}
	close(drained)
	var stdinR, stdinW *os.File
	if rec.config.GetStdin() {
		var err error
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			return nil, nil, nil, err
		}
		defer stdinR.Close()
	}
	hub := newAttachHub(stdinW, rec.config.GetStdinOnce(), nil)
	stdio := runc.Stdio{Stdout: hub.output("stdout", out.Stream("stdout")), Stderr: hub.output("stderr", out.Stream("stderr"))}
	if stdinR != nil {
		stdio.Stdin = stdinR
	}
	p, err := runc.Start(c, proc, stdio)
	if err != nil {
		hub.close()
		return nil, nil, nil, err
	}
	return p, hub, drained, nil
}

// processOf rebuilds the process a container's record describes.
func (s *Service) processOf(rec *containerRecord) (*specs.Process, error) {
	img, err := s.cfg.Images.Get(rec.ImageID)
	if err != nil {
		return nil, fmt.Errorf("image %s of container %s: %w", rec.ImageID, rec.ID, err)
	}
	p, err := processSpec(rec.config, img, filepath.Join(s.containerDir(rec.ID), "rootfs"))
	if err != nil {
		return nil, err
	}
	return runc.BuildSpec(runc.ContainerSpec{Process: p}).Process, nil
}

// oomKills is the OOM kill count of the container's memory cgroup; a
// count that cannot be read is logged and taken as zero.
func (s *Service) oomKills(rec *containerRecord) uint64 {
	s.mu.Lock()
	sb := s.sandboxes[rec.SandboxID]
	s.mu.Unlock()
	if sb == nil {
		return 0
	}
	n, err := oomKills(memoryCgroupDir(filepath.Join(sb.Cgroup, rec.ID)))
	if err != nil {
		s.cfg.Log.Warn("container OOM kill count", "container", rec.ID, "err", err)
	}
	return n
}

// finish records a container's exit.
func (s *Service) finish(rec *containerRecord, code int32, reason, msg string) {
	s.mu.Lock()
	rec.State, rec.FinishedAt, rec.ExitCode, rec.Reason, rec.Message, rec.Pid = stateExited, s.now(), code, reason, msg, 0
	s.mu.Unlock()
	if err := s.saveContainer(rec); err != nil {
		s.cfg.Log.Error("save container state", "container", rec.ID, "err", err)
	}
}

// StopContainer implements RuntimeServiceServer: SIGTERM (or the image's
// stop signal), then SIGKILL after the timeout.
func (s *Service) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	return &runtimeapi.StopContainerResponse{}, s.stop(ctx, req.GetContainerId(), req.GetTimeout())
}

func (s *Service) stop(ctx context.Context, id string, timeout int64) error {
	rec, err := s.container(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	done, running := s.exited[rec.ID], rec.State == stateRunning
	s.mu.Unlock()
	if !running {
		return nil
	}
	c, err := s.runner.Load(rec.ID)
	if err != nil {
		return err
	}
	if timeout > 0 {
		if err := c.Signal(unix.SIGTERM); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			return err
		}
		select {
		case <-done:
			return nil
		case <-time.After(time.Duration(timeout) * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		return err
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("container %s did not exit after SIGKILL", rec.ID)
	}
	return nil
}

// RemoveContainer implements RuntimeServiceServer.
func (s *Service) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	rec, err := s.container(req.GetContainerId())
	if err != nil {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err := s.stop(ctx, rec.ID, 0); err != nil {
		return nil, err
	}
	if c, err := s.runner.Load(rec.ID); err == nil {
		if err := c.Destroy(); err != nil {
			return nil, fmt.Errorf("destroy container %s: %w", rec.ID, err)
		}
	}
	if err := runc.UnmountRootfs(s.containerDir(rec.ID)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.containers, rec.ID)
	delete(s.exited, rec.ID)
	s.mu.Unlock()
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *Service) containerState(rec *containerRecord) runtimeapi.ContainerState {
	switch rec.State {
	case stateCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case stateRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case stateExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// ContainerStatus implements RuntimeServiceServer.
func (s *Service) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	rec, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &runtimeapi.ContainerStatus{
		Id:          rec.ID,
		Metadata:    rec.config.GetMetadata(),
		State:       s.containerState(rec),
		CreatedAt:   rec.CreatedAt.UnixNano(),
		Image:       rec.config.GetImage(),
		ImageRef:    rec.ImageRef,
		ImageId:     rec.ImageID,
		ExitCode:    rec.ExitCode,
		Reason:      rec.Reason,
		Message:     rec.Message,
		Labels:      rec.config.GetLabels(),
		Annotations: rec.config.GetAnnotations(),
		LogPath:     rec.LogPath,
		Mounts:      rec.config.GetMounts(),
	}
	if !rec.StartedAt.IsZero() {
		st.StartedAt = rec.StartedAt.UnixNano()
	}
	if !rec.FinishedAt.IsZero() {
		st.FinishedAt = rec.FinishedAt.UnixNano()
	}
	return &runtimeapi.ContainerStatusResponse{Status: st}, nil
}

// ListContainers implements RuntimeServiceServer.
func (s *Service) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range s.containers {
		st := s.containerState(c)
		if f.GetId() != "" && !strings.HasPrefix(c.ID, f.GetId()) {
			continue
		}
		if f.GetPodSandboxId() != "" && c.SandboxID != f.GetPodSandboxId() {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != st {
			continue
		}
		if !labelsMatch(c.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id: c.ID, PodSandboxId: c.SandboxID, Metadata: c.config.GetMetadata(), Image: c.config.GetImage(),
			ImageRef: c.ImageRef, ImageId: c.ImageID, State: st, CreatedAt: c.CreatedAt.UnixNano(),
			Labels: c.config.GetLabels(), Annotations: c.config.GetAnnotations(),
		})
	}
	slices.SortFunc(out, func(a, b *runtimeapi.Container) int { return int(b.CreatedAt - a.CreatedAt) })
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// readopt watches a container that was running when the runtime last
// stopped. It is not this process's child, so its exit code is lost;
// its exit is still noticed (pidfd) and reported.
func (s *Service) readopt(rec *containerRecord) {
	done := make(chan struct{})
	s.exited[rec.ID] = done
	go func() {
		defer close(done)
		fd, err := unix.PidfdOpen(rec.Pid, 0)
		if err == nil {
			defer unix.Close(fd)
			for {
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
				if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, syscall.EINTR) {
					break
				}
			}
		}
		reason := "Unknown"
		if s.oomKills(rec) > rec.OOMKillsAtStart {
			reason = reasonOOMKilled
		}
		s.finish(rec, 255, reason, "the container runtime restarted while the container ran; its exit status is unknown")
	}()
}
