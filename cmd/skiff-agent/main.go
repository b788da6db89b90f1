// Command skiff-agent is `skiff agent` alone: a worker node without the
// control plane and kubectl linked in, so it starts faster and keeps less
// in memory. skiff bundles it and runs it for `skiff agent`.
package main

import (
	"os"

	"github.com/skiff/skiff/cmd/internal/agentcmd"
)

func main() {
	cmd := agentcmd.Command(nil)
	cmd.Use = "skiff agent"
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
