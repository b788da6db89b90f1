// Package runc runs OCI containers with libcontainer (runc as a library):
// it builds OCI runtime specs, mounts overlay root filesystems from the
// image store's layers, and creates, starts, signals and destroys
// containers whose state lives in a directory so another process can load
// them later.
//
// Binaries using this package must let libcontainer's init step run:
// call InitIfRequested first thing in main (and in TestMain), which also
// links runc's nsenter constructor. They must also call
// runtime.LockOSThread in an init function of package main (or of the test
// package), so no goroutine but main ever runs on the main thread:
// libcontainer joins container mount namespaces on locked threads it lets
// die, and the main thread cannot die.
package runc

import (
	"fmt"
	"io"
	"os"
	"syscall"

	_ "github.com/opencontainers/cgroups/devices" // device rules in cgroups
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // namespace setup before the Go runtime starts
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// InitArg is the argument libcontainer re-executes the binary with.
const InitArg = "init"

// InitIfRequested runs libcontainer's container init and never returns
// when the process was started as a container's init; otherwise it returns
// at once.
func InitIfRequested() {
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		libcontainer.Init()
	}
}

// Runner creates and loads containers whose state lives under StateDir.
type Runner struct {
	StateDir string
}

// Stdio is a container process's standard streams (nil means /dev/null).
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ConsoleSocket, when set, gives the process a new pseudo-terminal as
	// its standard streams instead: the container's init step sends the
	// terminal's master side over this unix socket (SCM_RIGHTS).
	ConsoleSocket *os.File
}

// Create creates (but does not start) container id from spec.
func (r *Runner) Create(id string, spec *specs.Spec) (*libcontainer.Container, error) {
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec, NoNewKeyring: true})
	if err != nil {
		return nil, fmt.Errorf("container %s config: %w", id, err)
	}
	c, err := libcontainer.Create(r.StateDir, id, cfg)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	return c, nil
}

// Load returns a container created earlier, perhaps by another process.
func (r *Runner) Load(id string) (*libcontainer.Container, error) {
	return libcontainer.Load(r.StateDir, id)
}

// Start starts the container's init process as spec describes it.
func Start(c *libcontainer.Container, p *specs.Process, stdio Stdio) (*libcontainer.Process, error) {
	proc := &libcontainer.Process{
		Args:   p.Args,
		Env:    p.Env,
		Cwd:    p.Cwd,
		UID:    int(p.User.UID),
		GID:    int(p.User.GID),
		Stdin:  stdio.Stdin,
		Stdout: stdio.Stdout,
		Stderr: stdio.Stderr,
		Init:   true,

		ConsoleSocket: stdio.ConsoleSocket,
	}
	for _, g := range p.User.AdditionalGids {
		proc.AdditionalGroups = append(proc.AdditionalGroups, int(g))
	}
	if err := c.Run(proc); err != nil {
		return nil, fmt.Errorf("start container %s: %w", c.ID(), err)
	}
	return proc, nil
}

// ExitCode returns a finished process's exit code as Kubernetes reports
// it: 128+signal for processes killed by a signal.
func ExitCode(state *os.ProcessState) int32 {
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok {
		return int32(state.ExitCode())
	}
	if ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ws.ExitStatus())
}
