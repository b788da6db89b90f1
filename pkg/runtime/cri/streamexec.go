package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/skiff/skiff/pkg/runtime/runc"
)

// streamRuntime runs the streams the streaming server accepted.
type streamRuntime struct{ s *Service }

var _ streaming.Runtime = streamRuntime{}

// Exec implements streaming.Runtime.
func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.s.execStream(ctx, containerID, cmd, in, out, errOut, tty, resize)
}

// Attach implements streaming.Runtime.
func (r streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.s.attachStream(ctx, containerID, in, out, errOut, resize)
}

// PortForward implements streaming.Runtime.
func (r streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	return r.s.portForward(ctx, podSandboxID, port, stream)
}

// execStream runs cmd in a running container with the client's streams:
// over pipes, or over a pseudo-terminal that the container's init step
// creates (as `runc exec -t` does) when tty is set. A non-zero exit code
// is returned as a utilexec.ExitError, which the streaming library sends
// to the client as the command's exit status.
func (s *Service) execStream(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	rec, err := s.runningContainer(id)
	if err != nil {
		return err
	}
	c, spec, err := s.execTarget(rec)
	if err != nil {
		return err
	}
	p := execProcess(spec, cmd)
	var stdio execIO
	if tty {
		err = stdio.startTerminal(c, p, in, out, resize)
	} else {
		err = stdio.startPipes(c, p, in, out, errOut)
	}
	if err != nil {
		return fmt.Errorf("exec in %s: %w", rec.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// The stream's request ended before the command did.
			_ = p.Signal(unix.SIGKILL)
		case <-exited:
		}
	}()
	st, waitErr := p.Wait()
	close(exited)
	stdio.finish()
	if st == nil {
		return fmt.Errorf("exec in %s: %w", rec.ID, waitErr)
	}
	if code := runc.ExitCode(st); code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: int(code)}
	}
	return nil
}

// execIO connects an exec'd process's standard streams to the client's.
type execIO struct {
	// output copies the process's output to the client until it ends.
	output sync.WaitGroup
	// close are this side's ends, closed once the output is drained.
	close []io.Closer
}

// startPipes starts p with a pipe for each stream the client asked for.
// The copying is ours rather than os/exec's, so a client that keeps its
// stdin open cannot hold up the end of the command.
func (x *execIO) startPipes(c *libcontainer.Container, p *libcontainer.Process, in io.Reader, out, errOut io.Writer) error {
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	var stdin *os.File
	if in != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		p.Stdin, stdin = r, w
		childEnds = append(childEnds, r)
		x.close = append(x.close, w)
	}
	var readers []*os.File
	var writers []io.Writer
	for _, o := range []struct {
		w    io.Writer
		into *io.Writer
	}{{out, &p.Stdout}, {errOut, &p.Stderr}} {
		if o.w == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			x.closeAll()
			return err
		}
		*o.into = w
		childEnds = append(childEnds, w)
		readers, writers = append(readers, r), append(writers, o.w)
		x.close = append(x.close, r)
	}
	if err := c.Run(p); err != nil {
		x.closeAll()
		return err
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, in)
			// EOF on the client's stdin is EOF on the command's.
			stdin.Close()
		}()
	}
	for i := range readers {
		x.output.Add(1)
		go func() {
			defer x.output.Done()
			_, _ = io.Copy(writers[i], readers[i])
		}()
	}
	return nil
}

// startTerminal starts p on a new pseudo-terminal in the container and
// relays the client's input, output and window size changes through its
// master side.
func (x *execIO) startTerminal(c *libcontainer.Container, p *libcontainer.Process, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	parent, child, err := consoleSocket()
	if err != nil {
		return err
	}
	defer parent.Close()
	p.ConsoleSocket = child
	err = c.Run(p)
	child.Close()
	if err != nil {
		return err
	}
	master, err := receiveFile(parent)
	if err != nil {
		_ = p.Signal(unix.SIGKILL)
		return fmt.Errorf("receive the terminal: %w", err)
	}
	x.close = append(x.close, master)
	go resizeTerminal(master, resize)
	if in != nil {
		go func() { _, _ = io.Copy(master, in) }()
	}
	if out != nil {
		x.output.Add(1)
		go func() {
			defer x.output.Done()
			// Ends with EIO once every holder of the terminal has exited.
			_, _ = io.Copy(out, master)
		}()
	}
	return nil
}

// finish waits for the output to be drained and closes this side's ends.
func (x *execIO) finish() {
	x.output.Wait()
	x.closeAll()
}

func (x *execIO) closeAll() {
	for _, c := range x.close {
		_ = c.Close()
	}
}

// consoleSocket returns a connected pair of unix sockets: the child end
// goes to the container's init step, which sends the terminal it made
// over it; the parent end receives it (receiveFile).
func consoleSocket() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console-parent"), os.NewFile(uintptr(fds[1]), "console-child"), nil
}

// resizeTerminal applies the client's window sizes to the terminal until
// the client's resize stream ends.
func resizeTerminal(master *os.File, resize <-chan remotecommand.TerminalSize) {
	for size := range resize {
		ws := &unix.Winsize{Row: size.Height, Col: size.Width}
		if sc, err := master.SyscallConn(); err == nil {
			_ = sc.Control(func(fd uintptr) { _ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
		}
	}
}

// receiveFile reads the one file descriptor the container's init step
// sends over the console socket (SCM_RIGHTS) and returns it non-blocking,
// so that closing it ends pending reads.
func receiveFile(sock *os.File) (*os.File, error) {
	sc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var recvErr error
	if err := sc.Control(func(fd uintptr) {
		for {
			n, oobn, _, _, recvErr = unix.Recvmsg(int(fd), name, oob, 0)
			if !errors.Is(recvErr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return nil, err
	}
	if recvErr != nil {
		return nil, recvErr
	}
	if oobn == 0 {
		return nil, errors.New("no file descriptor received")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("unix rights: %v", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}
