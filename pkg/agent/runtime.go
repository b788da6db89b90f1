package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"

	"github.com/skiff/skiff/pkg/runtime/bundle"
	"github.com/skiff/skiff/pkg/runtime/daemon"
)

// runtimeClients connect to the node's runtime, starting it (detached, in
// its own session) when it is not answering.
func runtimeClients(ctx context.Context, agentDir string, log *slog.Logger) (internalapi.RuntimeService, internalapi.ImageManagerService, error) {
	endpoint := "unix://" + daemon.Socket(agentDir)
	if !runtimeAnswers(ctx, endpoint) {
		argv, err := runtimeCommand(agentDir)
		if err != nil {
			return nil, nil, err
		}
		if err := daemon.Start(agentDir, argv, log); err != nil {
			return nil, nil, err
		}
		deadline := time.Now().Add(15 * time.Second)
		for !runtimeAnswers(ctx, endpoint) {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("container runtime did not start; see %s", daemon.LogFile(agentDir))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	rt, err := remote.NewRemoteRuntimeService(ctx, endpoint, 2*time.Minute, nil, false)
	if err != nil {
		return nil, nil, err
	}
	im, err := remote.NewRemoteImageService(ctx, endpoint, 5*time.Minute, nil, false)
	if err != nil {
		return nil, nil, err
	}
	return rt, im, nil
}

// runtimeCommand is the bundled skiff-runtime, installed under the data
// dir (by this binary, or by skiff before it handed over to skiff-agent),
// or this binary's hidden `runtime` command in builds without it.
func runtimeCommand(agentDir string) ([]string, error) {
	bin := ""
	if bundle.Has(bundle.Runtime) {
		var err error
		if bin, err = bundle.Install(BinDir(agentDir), bundle.Runtime); err != nil {
			return nil, err
		}
	} else if installed, _ := filepath.Glob(filepath.Join(BinDir(agentDir), bundle.Runtime+"-*")); len(installed) == 1 {
		bin = installed[0]
	}
	if bin != "" {
		return []string{bin, "--agent-dir", agentDir}, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{self, "runtime", "--agent-dir", agentDir}, nil
}

// BinDir is where the bundled binaries are installed, under the agent dir.
func BinDir(agentDir string) string { return filepath.Join(agentDir, "bin") }

func runtimeAnswers(ctx context.Context, endpoint string) bool {
	if _, err := os.Stat(strings.TrimPrefix(endpoint, "unix://")); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rt, err := remote.NewRemoteRuntimeService(ctx, endpoint, 2*time.Second, nil, false)
	if err != nil {
		return false
	}
	_, err = rt.Version(ctx, "v1")
	return err == nil
}
