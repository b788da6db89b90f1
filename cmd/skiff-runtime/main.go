// Command skiff-runtime is a node's container runtime: a CRI server that
// runs pods' containers with libcontainer. skiff bundles it and the node
// agent starts it; it is not meant to be run by hand.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/pkg/runtime/runc"
)

// libcontainer's init runs on the main thread, which must stay locked.
func init() { runtime.LockOSThread() }

func main() {
	// A container's init step re-executes this binary; it never returns.
	runc.InitIfRequested()
	agentDir := flag.String("agent-dir", "/var/lib/skiff/agent", "the node agent's data dir")
	debug := flag.Bool("debug", false, "debug logs")
	flag.Parse()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SKIFF_CPUPROFILE=<file> profiles the runtime until it exits (for
	// hack/bench investigations).
	if path := os.Getenv("SKIFF_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	if err := daemon.Serve(ctx, *agentDir, log); err != nil {
		fmt.Fprintln(os.Stderr, "skiff-runtime:", err)
		os.Exit(1)
	}
}
