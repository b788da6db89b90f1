// Command skiff-agent is `skiff agent` alone: a worker node without the
// control plane and kubectl linked in, so it starts faster and keeps less
// in memory. skiff bundles it and runs it for `skiff agent`.
package main

import (
	"os"

	"github.com/skiff/skiff/cmd/internal/agentcmd"
	"github.com/skiff/skiff/pkg/volume/nfs"
)

func main() {
	cmd := agentcmd.Command(nil)
	cmd.Use = "skiff agent"
	// The kubelet starts this binary's own nfs-fuse helper.
	if len(os.Args) > 1 && os.Args[1] == nfs.HelperCommand {
		cmd = agentcmd.NFSFuseCommand()
		cmd.SetArgs(os.Args[2:])
	}
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
