package cri

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// attachHub is what clients attach to: it copies a running container's
// main process output to every attached client (its log file gets it too)
// and, for containers whose config asks for stdin, carries the clients'
// input to the process over a pipe this runtime holds.
//
// Only containers this runtime process started have one: after a runtime
// restart the output pipes of older containers are gone.
type attachHub struct {
	mu      sync.Mutex
	clients map[*attachment]struct{}
	// stdin is the write end of the process's stdin (nil without one);
	// stdinOnce closes it when the first attached client's input ends.
	stdin     *os.File
	stdinOnce bool
	// terminal is the master side of the process's pseudo-terminal, for
	// containers with a TTY (stdin is nil then: input goes to the
	// terminal).
	terminal *os.File
}

// attachment is one attached client.
type attachment struct {
	stdout, stderr io.Writer
	gone           chan struct{}
	leave          sync.Once
}

func newAttachHub(stdin *os.File, stdinOnce bool, terminal *os.File) *attachHub {
	return &attachHub{clients: map[*attachment]struct{}{}, stdin: stdin, stdinOnce: stdinOnce, terminal: terminal}
}

// output returns the writer of one stream ("stdout" or "stderr") that
// feeds next (the log) and every attached client.
func (h *attachHub) output(stream string, next io.Writer) io.Writer {
	return hubWriter{h: h, stream: stream, next: next}
}

type hubWriter struct {
	h      *attachHub
	stream string
	next   io.Writer
}

func (w hubWriter) Write(p []byte) (int, error) {
	n, err := w.next.Write(p)
	w.h.broadcast(w.stream, p)
	return n, err
}

// broadcast writes p to every client attached to stream; a client whose
// write fails has gone and is dropped.
func (h *attachHub) broadcast(stream string, p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for a := range h.clients {
		w := a.stdout
		if stream == "stderr" {
			w = a.stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			delete(h.clients, a)
			a.leave.Do(func() { close(a.gone) })
		}
	}
}

func (h *attachHub) add(stdout, stderr io.Writer) *attachment {
	a := &attachment{stdout: stdout, stderr: stderr, gone: make(chan struct{})}
	h.mu.Lock()
	h.clients[a] = struct{}{}
	h.mu.Unlock()
	return a
}

func (h *attachHub) remove(a *attachment) {
	h.mu.Lock()
	delete(h.clients, a)
	h.mu.Unlock()
}

// close closes the process's input: its stdin pipe, or its terminal.
func (h *attachHub) close() {
	h.closeStdin()
	if h.terminal != nil {
		_ = h.terminal.Close()
	}
}

// closeStdin closes the process's stdin (EOF for the process).
func (h *attachHub) closeStdin() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stdin != nil {
		_ = h.stdin.Close()
		h.stdin = nil
	}
}

func (h *attachHub) stdinWriter() *os.File {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stdin
}

// attachStream attaches the client's streams to a running container's main
// process until the process exits or the client goes away. For a
// container with a TTY, input goes to its terminal and the client's window
// size changes resize it.
func (s *Service) attachStream(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, resize <-chan remotecommand.TerminalSize) error {
	rec, err := s.runningContainer(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	hub, exited := s.attach[rec.ID], s.exited[rec.ID]
	s.mu.Unlock()
	if hub == nil {
		return grpcstatus.Errorf(codes.FailedPrecondition, "container %s was started by an earlier runtime process: its output cannot be attached to", rec.ID)
	}
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errOut != nil {
		stderr = errOut
	}
	a := hub.add(stdout, stderr)
	defer hub.remove(a)
	if hub.terminal != nil {
		go resizeTerminal(hub.terminal, resize)
		if in != nil && rec.config.GetStdin() {
			go func() {
				if _, err := io.Copy(hub.terminal, in); err != nil && !errors.Is(err, os.ErrClosed) {
					a.leave.Do(func() { close(a.gone) })
				}
			}()
		}
	} else if stdin := hub.stdinWriter(); in != nil && stdin != nil {
		go func() {
			_, err := io.Copy(stdin, in)
			if hub.stdinOnce {
				hub.closeStdin()
			}
			if err != nil && !errors.Is(err, os.ErrClosed) {
				a.leave.Do(func() { close(a.gone) })
			}
		}()
	}
	select {
	case <-exited:
	case <-a.gone:
	case <-ctx.Done():
	}
	return nil
}
