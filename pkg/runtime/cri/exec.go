package cri

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff/skiff/pkg/runtime/runc"
)

// ExecSync implements RuntimeServiceServer: it runs a command in a running
// container's namespaces and cgroup, as the container's user and with its
// environment, and returns its output and exit code.
func (s *Service) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	rec, err := s.runningContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c, spec, err := s.execTarget(rec)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	p := execProcess(spec, req.GetCmd())
	p.Stdout, p.Stderr = &stdout, &stderr
	if err := c.Run(p); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", rec.ID, err)
	}
	type result struct {
		code int32
	}
	done := make(chan result, 1)
	go func() {
		st, _ := p.Wait()
		if st == nil {
			done <- result{code: -1}
			return
		}
		done <- result{code: runc.ExitCode(st)}
	}()
	var timeout <-chan time.Time
	if t := req.GetTimeout(); t > 0 {
		timeout = time.After(time.Duration(t) * time.Second)
	}
	select {
	case r := <-done:
		return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: r.code}, nil
	case <-timeout:
		_ = p.Signal(unix.SIGKILL)
		<-done
		return nil, grpcstatus.Errorf(codes.DeadlineExceeded, "command %v timed out after %ds", req.GetCmd(), req.GetTimeout())
	case <-ctx.Done():
		_ = p.Signal(unix.SIGKILL)
		<-done
		return nil, ctx.Err()
	}
}

// execTarget loads a running container and the process spec its execs
// inherit (environment, working directory, user).
func (s *Service) execTarget(rec *containerRecord) (*libcontainer.Container, *specs.Process, error) {
	c, err := s.runner.Load(rec.ID)
	if err != nil {
		return nil, nil, err
	}
	spec, err := s.processOf(rec)
	if err != nil {
		return nil, nil, err
	}
	return c, spec, nil
}

// execProcess is cmd run as the container's process runs: its
// environment, working directory, user and groups.
func execProcess(spec *specs.Process, cmd []string) *libcontainer.Process {
	p := &libcontainer.Process{
		Args: cmd, Env: spec.Env, Cwd: spec.Cwd,
		UID: int(spec.User.UID), GID: int(spec.User.GID),
	}
	for _, g := range spec.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	return p
}
