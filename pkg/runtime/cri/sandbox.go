package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/runtime/runc"
	"github.com/skiff/skiff/pkg/runtime/sandbox"
)

const (
	sandboxReady    = "ready"
	sandboxNotReady = "notready"
)

// RunPodSandbox implements RuntimeServiceServer: it creates the pod's
// namespaces and files and records the sandbox.
func (s *Service) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata() == nil {
		return nil, errors.New("sandbox metadata is required")
	}
	id := newID()
	hostname := cfg.GetHostname()
	if hostname == "" {
		hostname = cfg.GetMetadata().GetName()
	}
	resolv := ""
	if d := cfg.GetDnsConfig(); d != nil {
		resolv = sandbox.ResolvConf(d.GetServers(), d.GetSearches(), d.GetOptions())
	} else if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		resolv = string(b)
	}
	if _, err := sandbox.Create(sandbox.Config{Dir: s.sandboxDir(id), Hostname: hostname, ResolvConf: resolv, Sysctls: cfg.GetLinux().GetSysctls()}); err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	cgroup := cfg.GetLinux().GetCgroupParent()
	if cgroup == "" {
		cgroup = path.Join(s.cfg.CgroupRoot, "pod"+cfg.GetMetadata().GetUid())
	}
	if dir := cfg.GetLogDirectory(); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	rec := &sandboxRecord{ID: id, State: sandboxReady, CreatedAt: s.now(), Cgroup: cgroup, config: cfg}
	if n := s.network(); n != nil && podNetwork(cfg) {
		ip, err := n.Attach(sandbox.Sandbox{Dir: s.sandboxDir(id)}.NamespacePath("net"), id)
		if err != nil {
			_ = sandbox.Remove(s.sandboxDir(id))
			return nil, fmt.Errorf("pod network: %w", err)
		}
		rec.IP = ip.String()
		// As the kubelet's managed hosts file: the pod's own name
		// resolves to its address.
		if err := appendLine(sandbox.Sandbox{Dir: s.sandboxDir(id)}.File("hosts"), rec.IP+"\t"+hostname); err != nil {
			s.detach(id)
			_ = sandbox.Remove(s.sandboxDir(id))
			return nil, fmt.Errorf("pod hosts file: %w", err)
		}
	}
	if err := s.saveSandbox(rec); err != nil {
		s.detach(id)
		_ = sandbox.Remove(s.sandboxDir(id))
		return nil, err
	}
	s.mu.Lock()
	s.sandboxes[id] = rec
	s.mu.Unlock()
	if len(cfg.GetPortMappings()) > 0 && rec.IP != "" {
		if err := s.syncHostPorts(ctx); err != nil {
			// As a failed CNI ADD: the kubelet retries with a new sandbox.
			_, _ = s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			_, _ = s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			return nil, fmt.Errorf("publish host ports: %w", err)
		}
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// appendLine adds line to the file at path.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// detach takes a sandbox off the pod network (its veth and address).
func (s *Service) detach(id string) {
	if n := s.network(); n != nil {
		if err := n.Detach(id); err != nil {
			s.cfg.Log.Warn("detach sandbox from the pod network", "sandbox", id, "err", err)
		}
	}
}

func (s *Service) saveSandbox(rec *sandboxRecord) error {
	if err := rec.encode(); err != nil {
		return err
	}
	return saveRecord(s.sandboxDir(rec.ID)+"/sandbox.json", rec)
}

func (s *Service) sandbox(id string) (*sandboxRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb, ok := s.sandboxes[id]; ok {
		return sb, nil
	}
	return nil, notFound("sandbox", id)
}

// StopPodSandbox implements RuntimeServiceServer: every container of the
// sandbox is killed and it leaves the pod network; the namespaces stay
// until removal.
func (s *Service) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		// Stopping an unknown sandbox succeeds, as the CRI requires.
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	for _, c := range s.containersOf(sb.ID) {
		if err := s.stop(ctx, c.ID, 0); err != nil {
			return nil, err
		}
	}
	// The address goes back at once, as a CNI DEL on stop does: finished
	// pods keep their sandboxes (for logs) but not their addresses.
	s.detach(sb.ID)
	s.mu.Lock()
	sb.State, sb.IP = sandboxNotReady, ""
	s.mu.Unlock()
	if len(sb.config.GetPortMappings()) > 0 {
		if err := s.syncHostPorts(ctx); err != nil {
			s.cfg.Log.Warn("withdraw the sandbox's host ports", "sandbox", sb.ID, "err", err)
		}
	}
	return &runtimeapi.StopPodSandboxResponse{}, s.saveSandbox(sb)
}

// RemovePodSandbox implements RuntimeServiceServer.
func (s *Service) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	for _, c := range s.containersOf(sb.ID) {
		if _, err := s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.ID}); err != nil {
			return nil, err
		}
	}
	s.detach(sb.ID)
	if err := sandbox.Remove(s.sandboxDir(sb.ID)); err != nil {
		return nil, err
	}
	if err := runc.RemoveCgroup(sb.Cgroup); err != nil {
		s.cfg.Log.Warn("remove pod cgroup", "cgroup", sb.Cgroup, "err", err)
	}
	s.mu.Lock()
	delete(s.sandboxes, sb.ID)
	s.mu.Unlock()
	if len(sb.config.GetPortMappings()) > 0 {
		if err := s.syncHostPorts(ctx); err != nil {
			s.cfg.Log.Warn("withdraw the sandbox's host ports", "sandbox", sb.ID, "err", err)
		}
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (s *Service) containersOf(sandboxID string) []*containerRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*containerRecord
	for _, c := range s.containers {
		if c.SandboxID == sandboxID {
			out = append(out, c)
		}
	}
	return out
}

func (s *Service) sandboxState(sb *sandboxRecord) runtimeapi.PodSandboxState {
	if sb.State == sandboxReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// PodSandboxStatus implements RuntimeServiceServer.
func (s *Service) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id:          sb.ID,
		Metadata:    sb.config.GetMetadata(),
		State:       s.sandboxState(sb),
		CreatedAt:   sb.CreatedAt.UnixNano(),
		Network:     &runtimeapi.PodSandboxNetworkStatus{Ip: sb.IP},
		Linux:       &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: sb.config.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
		Labels:      sb.config.GetLabels(),
		Annotations: sb.config.GetAnnotations(),
	}}, nil
}

// ListPodSandbox implements RuntimeServiceServer.
func (s *Service) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, sb := range s.sandboxes {
		st := s.sandboxState(sb)
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != st {
			continue
		}
		if !labelsMatch(sb.config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: sb.ID, Metadata: sb.config.GetMetadata(), State: st, CreatedAt: sb.CreatedAt.UnixNano(),
			Labels: sb.config.GetLabels(), Annotations: sb.config.GetAnnotations(),
		})
	}
	slices.SortFunc(out, func(a, b *runtimeapi.PodSandbox) int { return int(b.CreatedAt - a.CreatedAt) })
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
