package cri

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/runc/libcontainer"
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
	rec, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	running := rec.State == stateRunning
	s.mu.Unlock()
	if !running {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "container %s is not running", rec.ID)
	}
	c, err := s.runner.Load(rec.ID)
	if err != nil {
		return nil, err
	}
	spec, err := s.processOf(rec)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	p := &libcontainer.Process{
		Args: req.GetCmd(), Env: spec.Env, Cwd: spec.Cwd,
		UID: int(spec.User.UID), GID: int(spec.User.GID),
		Stdout: &stdout, Stderr: &stderr,
	}
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
