// Package logrotate rotates containers' log files the way the upstream
// kubelet's container log manager does: when a running container's log
// grows past a size it is renamed to <log>.<timestamp>, the runtime is asked
// to reopen it, older rotated files are gzipped and only a number of files
// per container is kept.
package logrotate

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Policy limits a container's logs; the defaults are upstream's
// (containerLogMaxSize 10Mi, containerLogMaxFiles 5).
type Policy struct {
	// MaxSize is the size at which the current log file is rotated.
	MaxSize int64
	// MaxFiles is how many files (the current one included) are kept.
	MaxFiles int
}

// DefaultPolicy is the upstream kubelet's default.
var DefaultPolicy = Policy{MaxSize: 10 << 20, MaxFiles: 5}

// Validate checks the policy as upstream does.
func (p Policy) Validate() error {
	if p.MaxFiles < 2 {
		return fmt.Errorf("invalid MaxFiles %d, must be > 1", p.MaxFiles)
	}
	if p.MaxSize <= 0 {
		return fmt.Errorf("invalid MaxSize %d, must be > 0", p.MaxSize)
	}
	return nil
}

const (
	timestampFormat = "20060102-150405"
	compressSuffix  = ".gz"
	tmpSuffix       = ".tmp"
)

// Rotator rotates the logs of a runtime's running containers.
type Rotator struct {
	policy  Policy
	runtime internalapi.RuntimeService
	clock   clock.WithTicker
	log     *slog.Logger
}

// New returns a Rotator.
func New(p Policy, rt internalapi.RuntimeService, clk clock.WithTicker, log *slog.Logger) *Rotator {
	if log == nil {
		log = slog.Default()
	}
	return &Rotator{policy: p, runtime: rt, clock: clk, log: log}
}

// Run rotates every period until ctx ends.
func (r *Rotator) Run(ctx context.Context, period time.Duration) {
	t := r.clock.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if err := r.RotateAll(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("rotate container logs", "err", err)
		}
	}
}

// RotateAll rotates the log of each running container that outgrew the
// policy.
func (r *Rotator) RotateAll(ctx context.Context) error {
	ctrs, err := r.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range ctrs {
		st, err := r.runtime.ContainerStatus(ctx, c.GetId(), false)
		if err != nil {
			errs = append(errs, fmt.Errorf("status of container %s: %w", c.GetId(), err))
			continue
		}
		path := st.GetStatus().GetLogPath()
		if path == "" {
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			if !os.IsNotExist(err) {
				errs = append(errs, err)
			}
			continue
		}
		if fi.Size() < r.policy.MaxSize {
			continue
		}
		if err := r.Rotate(ctx, c.GetId(), path); err != nil {
			errs = append(errs, fmt.Errorf("rotate log of container %s: %w", c.GetId(), err))
		}
	}
	return errors.Join(errs...)
}

// Rotate rotates one container's log file now.
func (r *Rotator) Rotate(ctx context.Context, id, path string) error {
	rotated, err := r.cleanup(path)
	if err != nil {
		return err
	}
	// Keep MaxFiles-2 rotated files: the current one and the one about
	// to be rotated make MaxFiles.
	if excess := len(rotated) - (r.policy.MaxFiles - 2); excess > 0 {
		for _, f := range rotated[:excess] {
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
		rotated = rotated[excess:]
	}
	// All but the newest rotated file are compressed; the newest stays
	// plain so that readers following the log across rotation can finish
	// it.
	for _, f := range rotated {
		if !strings.HasSuffix(f, compressSuffix) {
			if err := compress(f); err != nil {
				return err
			}
		}
	}
	to := path + "." + r.clock.Now().Format(timestampFormat)
	if err := os.Rename(path, to); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	if err := r.runtime.ReopenContainerLog(ctx, id); err != nil {
		// Put the file back so that output is not lost to a name
		// nothing reads.
		if rerr := os.Rename(to, path); rerr != nil {
			r.log.Error("restore log after failed reopen", "path", path, "err", rerr)
		}
		return fmt.Errorf("reopen: %w", err)
	}
	r.log.Debug("rotated container log", "container", id, "to", to)
	return nil
}

// cleanup removes leftovers of interrupted compressions and returns the
// rotated files of path, oldest first.
func (r *Rotator) cleanup(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, m := range matches {
		have[m] = true
	}
	var rotated []string
	for _, m := range matches {
		switch {
		case strings.HasSuffix(m, tmpSuffix):
			_ = os.Remove(m)
		case !strings.HasSuffix(m, compressSuffix) && have[m+compressSuffix]:
			// Compressed, but the original's removal was interrupted.
			_ = os.Remove(m)
		default:
			rotated = append(rotated, m)
		}
	}
	// Timestamps sort as text; strip .gz so a file sorts by its time.
	sort.Slice(rotated, func(i, j int) bool {
		return strings.TrimSuffix(rotated[i], compressSuffix) < strings.TrimSuffix(rotated[j], compressSuffix)
	})
	return rotated, nil
}

func globEscape(p string) string {
	return strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`).Replace(p)
}

// compress gzips f to f.gz (through a temporary file) and removes f.
func compress(f string) error {
	in, err := os.Open(f)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := f + compressSuffix + tmpSuffix
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	err = errors.Join(err, zw.Close(), out.Close())
	if err == nil {
		err = os.Rename(tmp, f+compressSuffix)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compress %s: %w", f, err)
	}
	return os.Remove(f)
}
