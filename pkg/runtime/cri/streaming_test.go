package cri_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// stream connects to a streaming URL the runtime handed out, as the
// kubelet's proxy would, with client-go's SPDY executor.
func stream(t *testing.T, rawURL string, opts remotecommand.StreamOptions) error {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Fatalf("streaming URL %s is not on the loopback address", rawURL)
	}
	ex, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: u.Scheme + "://" + u.Host}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return ex.StreamWithContext(ctx, opts)
}

// fixedSize is a terminal size queue with one size.
type fixedSize struct{ sent bool }

func (f *fixedSize) Next() *remotecommand.TerminalSize {
	if f.sent {
		return nil // no more resizes
	}
	f.sent = true
	return &remotecommand.TerminalSize{Width: 91, Height: 27}
}

func TestExecAndAttachStreams(t *testing.T) {
	f, _ := start(t)
	ctx := context.Background()
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "streams", Namespace: "default", Uid: "uid-streams"}}
	sbID, err := f.rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: "registry.local/busybox:cri"},
		Command:  []string{"/bin/sh", "-c", "while read line; do echo got $line; echo err $line >&2; done"},
		Stdin:    true,
	}
	id, err := f.rt.CreateContainer(ctx, sbID, cfg, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}

	exec := func(cmd []string, stdin string, tty bool) (string, string, error) {
		t.Helper()
		resp, err := f.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdin: stdin != "", Stdout: true, Stderr: !tty, Tty: tty})
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		opts := remotecommand.StreamOptions{Stdout: &stdout, Tty: tty}
		if !tty {
			opts.Stderr = &stderr
		} else {
			opts.TerminalSizeQueue = &fixedSize{}
		}
		if stdin != "" {
			opts.Stdin = strings.NewReader(stdin)
		}
		err = stream(t, resp.Url, opts)
		return stdout.String(), stderr.String(), err
	}

	if out, errOut, err := exec([]string{"sh", "-c", "echo a b; echo oops >&2"}, "", false); err != nil || out != "a b\n" || errOut != "oops\n" {
		t.Fatalf("exec: %v stdout %q stderr %q", err, out, errOut)
	}
	_, _, err = exec([]string{"sh", "-c", "exit 3"}, "", false)
	var exit utilexec.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
		t.Fatalf("exit code: %v", err)
	}
	if out, _, err := exec([]string{"cat"}, "one\ntwo\n", false); err != nil || out != "one\ntwo\n" {
		t.Fatalf("stdin: %v %q", err, out)
	}
	// A terminal: the shell's stdin is one, and the window size arrives.
	out, _, err := exec([]string{"sh", "-c", "[ -t 0 ] && echo tty; read x; echo in=$x; stty size"}, "hello\n", true)
	if err != nil || !strings.Contains(out, "tty\r\n") || !strings.Contains(out, "in=hello") || !strings.Contains(out, "27 91") {
		t.Fatalf("tty: %v %q", err, out)
	}

	// Attach: input reaches the main process, its output comes back.
	resp, err := f.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- stream(t, resp.Url, remotecommand.StreamOptions{Stdin: pr, Stdout: &stdout, Stderr: &stderr})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "got ping") || !strings.Contains(stderr.String(), "err ping") {
		if time.Now().After(deadline) {
			t.Fatalf("attach: stdout %q stderr %q", stdout.String(), stderr.String())
		}
		_, _ = pw.Write([]byte("ping\n"))
		time.Sleep(100 * time.Millisecond)
	}
	if err := f.rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end when the container exited")
	}

	// A container with a terminal: attach types into it and reads its
	// answer; the container's exit ends the attach.
	cfg = &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "tty"},
		Image:    &runtimeapi.ImageSpec{Image: "registry.local/busybox:cri"},
		Command:  []string{"/bin/sh", "-c", "[ -t 0 ] && echo tty; read x; echo got-$x"},
		Stdin:    true,
		Tty:      true,
	}
	if id, err = f.rt.CreateContainer(ctx, sbID, cfg, sbCfg); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	resp, err = f.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
	if err != nil {
		t.Fatal(err)
	}
	var screen syncBuffer
	if err := stream(t, resp.Url, remotecommand.StreamOptions{Stdin: strings.NewReader("hello\r"), Stdout: &screen, Tty: true, TerminalSizeQueue: &fixedSize{}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(screen.String(), "got-hello\r\n") {
		t.Fatalf("attach to a terminal: %q", screen.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
