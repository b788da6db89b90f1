package cri

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxLogLine is the longest line written as one CRI log entry; longer lines
// are split into partial ("P") entries, as containerd does.
const maxLogLine = 16 << 10

// logWriter writes a container's output to its log file in the CRI format:
//
//	2016-10-06T00:17:09.669794202Z stdout F the line
type logWriter struct {
	mu      sync.Mutex
	path    string
	file    *os.File
	now     func() time.Time
	streams []*streamWriter
}

// newLogWriter opens (appending) the log file; path "" discards output.
func newLogWriter(path string) (*logWriter, error) {
	w := &logWriter{now: time.Now, path: path}
	if path == "" {
		return w, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := openLog(path)
	if err != nil {
		return nil, err
	}
	w.file = f
	return w, nil
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
}

// Reopen closes the log file and opens its path again, so output goes to a
// new file once the old one was renamed away (log rotation).
func (w *logWriter) Reopen() error {
	if w.path == "" {
		return nil
	}
	f, err := openLog(w.path)
	if err != nil {
		return fmt.Errorf("reopen log %s: %w", w.path, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		f.Close()
		return fmt.Errorf("log of an exited container")
	}
	old := w.file
	w.file = f
	return old.Close()
}

// Stream returns the writer of one stream ("stdout", "stderr").
func (w *logWriter) Stream(name string) io.Writer {
	s := &streamWriter{w: w, name: name}
	w.streams = append(w.streams, s)
	return s
}

// Close writes out unfinished lines, as partial ("P") entries since no
// newline ended them (as containerd does: a reader shows them without
// one), and closes the log file. Call it only once the streams are no
// longer written to.
func (w *logWriter) Close() error {
	for _, s := range w.streams {
		if len(s.partial) > 0 {
			w.entry(s.name, 'P', s.partial)
			s.partial = nil
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		return nil
	}
	err := w.file.Close()
	w.file = nil
	return err
}

func (w *logWriter) entry(stream string, tag byte, line []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		return
	}
	var b bytes.Buffer
	b.WriteString(w.now().UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteByte(tag)
	b.WriteByte(' ')
	b.Write(line)
	b.WriteByte('\n')
	_, _ = w.file.Write(b.Bytes())
}

// streamWriter splits one stream into lines.
type streamWriter struct {
	w       *logWriter
	name    string
	partial []byte
}

func (s *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.partial = append(s.partial, p...)
			for len(s.partial) >= maxLogLine {
				s.w.entry(s.name, 'P', s.partial[:maxLogLine])
				s.partial = append([]byte{}, s.partial[maxLogLine:]...)
			}
			break
		}
		line := append(s.partial, p[:i]...)
		s.partial = nil
		for len(line) > maxLogLine {
			s.w.entry(s.name, 'P', line[:maxLogLine])
			line = line[maxLogLine:]
		}
		s.w.entry(s.name, 'F', line)
		p = p[i+1:]
	}
	return n, nil
}

// ReopenContainerLog implements RuntimeServiceServer: the kubelet renamed
// the container's log file and asks for output to go to a new one.
func (s *Service) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	rec, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	w := s.logs[rec.ID]
	s.mu.Unlock()
	if w == nil {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "container %s is not running", rec.ID)
	}
	if err := w.Reopen(); err != nil {
		return nil, err
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
