// Package agentcmd is the `skiff agent` command, shared by skiff and the
// lean skiff-agent binary that skiff bundles and runs for it.
package agentcmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiff/skiff/pkg/agent"
)

// KubeletArgHelp documents --kubelet-arg (on server and agent).
const KubeletArgHelp = "Customized flag for the kubelet (name=value): image-gc-high-threshold, image-gc-low-threshold, minimum-image-ttl-duration, container-log-max-size, container-log-max-files, container-log-monitor-interval"

// Command is `skiff agent`: it joins a server and runs a worker node.
// handoff, if not nil, is called with the agent dir once the flags are
// valid; it may replace the process (exec) with a leaner agent binary.
func Command(handoff func(agentDir string) error) *cobra.Command {
	var server, token, dataDir, nodeName, nodeIP string
	var kubeletArgs []string
	var debug, cleanup bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a worker node that joins a skiff server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" || token == "" {
				return fmt.Errorf("--server and --token are required")
			}
			kopts, err := agent.ParseKubeletArgs(kubeletArgs)
			if err != nil {
				return err
			}
			dir := filepath.Join(dataDir, "agent")
			if handoff != nil {
				if err := handoff(dir); err != nil {
					return err
				}
			}
			log := NewLogger(debug)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if nodeName == "" {
				n, err := agent.DefaultNodeName()
				if err != nil {
					return err
				}
				nodeName = n
			}
			if nodeIP == "" {
				nodeIP = agent.HostIP()
			}
			j, err := agent.Join(ctx, server, token, nodeName, nodeIP, dir, log)
			if err != nil {
				return err
			}
			return agent.Run(ctx, agent.Config{DataDir: dir, NodeName: nodeName, NodeIP: nodeIP, RESTConfig: j.RESTConfig,
				ServingCert: j.ServingCert, ClientCAs: j.ClientCAs, CleanupOnExit: cleanup, Kubelet: &kopts, Log: log})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&server, "server", "s", "", "Server to connect to (https://host:6443)")
	f.StringVarP(&token, "token", "t", "", "Token to use for authentication (the server's <data-dir>/token)")
	f.StringVarP(&dataDir, "data-dir", "d", "/var/lib/skiff", "Folder to hold state")
	f.StringVar(&nodeName, "node-name", "", "Node name (default the hostname)")
	f.StringVar(&nodeIP, "node-ip", "", "IP address to advertise for the node")
	f.BoolVar(&cleanup, "cleanup-on-exit", false, "On SIGTERM stop every pod and remove everything skiff made on this node")
	f.StringArrayVar(&kubeletArgs, "kubelet-arg", nil, KubeletArgHelp)
	f.BoolVar(&debug, "debug", false, "Turn on debug logs")
	return cmd
}

// NewLogger is the commands' text logger on stderr.
func NewLogger(debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
