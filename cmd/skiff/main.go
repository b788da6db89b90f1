// Command skiff is a Kubernetes-compatible container orchestrator in one
// binary: `skiff server` runs a control plane (and, later, a node), `skiff
// agent` joins a worker, and `skiff kubectl` is the real kubectl.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"

	"github.com/skiff/skiff/cmd/internal/agentcmd"
	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/pkg/controllermanager"
	"github.com/skiff/skiff/pkg/runtime/bundle"
	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/pkg/runtime/runc"
	"github.com/skiff/skiff/pkg/server"
	"github.com/skiff/skiff/pkg/version"
)

// The main goroutine keeps the main thread to itself: libcontainer joins
// container mount namespaces on locked threads that it lets die, and the
// main thread cannot die (it would be wedged in a container's mount
// namespace, and /proc/self with it).
func init() { runtime.LockOSThread() }

func main() {
	// A container's init step re-executes this binary; it never returns.
	runc.InitIfRequested()
	// Invoked as "kubectl" (a symlink), behave as kubectl.
	if filepath.Base(os.Args[0]) == "kubectl" {
		runKubectl(os.Args[1:])
		return
	}
	if err := rootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "A Kubernetes-compatible container orchestrator in one binary",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(serverCmd(), agentCmd(), kubectlCmd(), imagesCmd(), clusterCmd(), runtimeCmd(), versionCmd(), agentcmd.NFSFuseCommand())
	return root
}

func serverCmd() *cobra.Command {
	var cfg server.Config
	var apiServerArgs, controllerManagerArgs []string
	var debug bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (API server on etcd)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.ApplyKubeAPIServerArgs(apiServerArgs); err != nil {
				return err
			}
			opts, err := controllermanager.ParseArgs(controllerManagerArgs)
			if err != nil {
				return err
			}
			cfg.ControllerManager = &opts
			log := newLogger(debug)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			defer profileCPU()()
			return server.Run(ctx, cfg, log, version.Info())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfg.DataDir, "data-dir", "d", "/var/lib/skiff", "Folder to hold state")
	f.IntVar(&cfg.HTTPSPort, "https-listen-port", 6443, "HTTPS listen port")
	f.StringVar(&cfg.BindAddress, "bind-address", "0.0.0.0", "skiff bind address")
	f.StringVarP(&cfg.WriteKubeconfig, "write-kubeconfig", "o", "", "Write the admin kubeconfig to this file (default <data-dir>/admin.kubeconfig)")
	f.StringVar(&cfg.NodeName, "node-name", "", "Node name (default the hostname)")
	f.StringVar(&cfg.NodeIP, "node-ip", "", "IP address to advertise for the node (default the bind address, else the host's outward address)")
	f.BoolVar(&cfg.DisableAgent, "disable-agent", false, "Do not run a local agent and register a local kubelet")
	f.BoolVar(&cfg.DisableScheduler, "disable-scheduler", false, "Disable the scheduler")
	f.BoolVar(&cfg.DisableControllerManager, "disable-controller-manager", false, "Disable the controller manager")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.42.0.0/16", "IPv4 network CIDR to use for pod IPs")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", "10.43.0.0/16", "IPv4 network CIDR to use for service IPs")
	f.StringVar(&cfg.ClusterDNS, "cluster-dns", "", "IPv4 cluster IP for the DNS service (default the 10th address of --service-cidr)")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "Cluster domain")
	f.StringVarP(&cfg.Token, "token", "t", "", "Shared secret used to join agents to the cluster")
	f.BoolVar(&cfg.ClusterInit, "cluster-init", false, "Initialize a new cluster using embedded etcd")
	f.StringVarP(&cfg.Server, "server", "s", "", "Server to connect to, used to join a cluster")
	f.StringVar(&cfg.DatastoreEndpoint, "datastore-endpoint", "", "External etcd endpoints (https://host:2379,...)")
	f.StringVar(&cfg.DatastoreCAFile, "datastore-cafile", "", "TLS Certificate Authority file used to secure datastore backend communication")
	f.StringVar(&cfg.DatastoreCertFile, "datastore-certfile", "", "TLS certification file used to secure datastore backend communication")
	f.StringVar(&cfg.DatastoreKeyFile, "datastore-keyfile", "", "TLS key file used to secure datastore backend communication")
	f.BoolVar(&cfg.CleanupOnExit, "cleanup-on-exit", false, "On SIGTERM stop every pod and remove everything skiff made on this node")
	f.StringArrayVar(&cfg.KubeletArgs, "kubelet-arg", nil, agentcmd.KubeletArgHelp)
	f.StringArrayVar(&apiServerArgs, "kube-apiserver-arg", nil, server.KubeAPIServerArgHelp)
	f.StringArrayVar(&controllerManagerArgs, "kube-controller-manager-arg", nil, controllermanager.ArgHelp)
	f.BoolVar(&debug, "debug", false, "Turn on debug logs")
	f.DurationVar(&cfg.WatchBookmarkInterval, "watch-bookmark-interval", 15*time.Second, "How often watches that allow bookmarks receive one")
	_ = f.MarkHidden("watch-bookmark-interval")
	return cmd
}

func runtimeCmd() *cobra.Command {
	var agentDir string
	var debug bool
	cmd := &cobra.Command{
		Use:    "runtime",
		Short:  "Serve the node's container runtime (CRI); the agent starts it",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return daemon.Serve(ctx, agentDir, newLogger(debug))
		},
	}
	cmd.Flags().StringVar(&agentDir, "agent-dir", "/var/lib/skiff/agent", "The agent's data dir")
	cmd.Flags().BoolVar(&debug, "debug", false, "Turn on debug logs")
	return cmd
}

// newLogger returns the text logger on stderr that commands use.
func newLogger(debug bool) *slog.Logger { return agentcmd.NewLogger(debug) }

// agentCmd is `skiff agent`. When this build bundles skiff-agent, the
// process becomes that leaner binary (same flags) once they are valid.
func agentCmd() *cobra.Command {
	return agentcmd.Command(func(agentDir string) error {
		if !bundle.Has(bundle.Agent) {
			return nil
		}
		// skiff-agent does not carry the runtime: it runs the one
		// installed here.
		if _, err := bundle.Install(agent.BinDir(agentDir), bundle.Runtime); err != nil {
			return err
		}
		bin, err := bundle.Install(agent.BinDir(agentDir), bundle.Agent)
		if err != nil {
			return err
		}
		args := os.Args[1:]
		if i := slices.Index(args, "agent"); i >= 0 {
			args = args[i+1:]
		}
		return syscall.Exec(bin, append([]string{bin}, args...), os.Environ())
	})
}

func kubectlCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl",
		Short:              "Run the embedded kubectl",
		DisableFlagParsing: true,
		Run: func(_ *cobra.Command, args []string) {
			runKubectl(args)
		},
	}
}

// runKubectl runs the embedded kubectl, with a kubeconfig found as
// kubeconfigArgs says.
func runKubectl(args []string) {
	args, kubeconfig, tried := kubeconfigArgs(args, os.Getenv, fileExists)
	if kubeconfig != "" {
		os.Setenv("KUBECONFIG", kubeconfig)
	} else if tried != nil {
		fmt.Fprintf(os.Stderr, "skiff kubectl: no kubeconfig found (tried %s); pass --data-dir DIR, set SKIFF_DATA_DIR or KUBECONFIG, or use --kubeconfig\n", strings.Join(tried, ", "))
	}
	os.Args = append([]string{"kubectl"}, args...)
	cmd := kubectlcmd.NewDefaultKubectlCommand()
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}

// kubeconfigArgs finds the kubeconfig `skiff kubectl` uses when neither
// KUBECONFIG nor --kubeconfig names one: <data-dir>/admin.kubeconfig,
// where the data dir is --data-dir (taken out of the kubectl arguments),
// else $SKIFF_DATA_DIR, else /var/lib/skiff (as k3s does), and then
// kubectl's own ~/.kube/config. It returns the remaining arguments, the
// kubeconfig to use ("" to leave kubectl's default), and the paths tried
// when none exists.
func kubeconfigArgs(args []string, getenv func(string) string, exists func(string) bool) (rest []string, kubeconfig string, tried []string) {
	dataDir := ""
	explicit := getenv("KUBECONFIG") != ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case a == "--data-dir" && i+1 < len(args):
			dataDir = args[i+1]
			i++
		case strings.HasPrefix(a, "--data-dir="):
			dataDir = strings.TrimPrefix(a, "--data-dir=")
		default:
			if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
				explicit = true
			}
			rest = append(rest, a)
		}
	}
	if explicit {
		return rest, "", nil
	}
	if dataDir == "" {
		dataDir = getenv("SKIFF_DATA_DIR")
	}
	if dataDir == "" {
		dataDir = "/var/lib/skiff"
	}
	candidate := filepath.Join(dataDir, "admin.kubeconfig")
	if exists(candidate) {
		return rest, candidate, nil
	}
	tried = []string{candidate}
	if home := getenv("HOME"); home != "" {
		def := filepath.Join(home, ".kube", "config")
		if exists(def) {
			return rest, "", nil
		}
		tried = append(tried, def)
	}
	return rest, "", tried
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(*cobra.Command, []string) {
			v := version.Info()
			fmt.Printf("skiff version %s (%s)\ngo version %s\n", v.GitVersion, v.GitCommit, v.GoVersion)
		},
	}
}

// profileCPU writes a CPU profile to $SKIFF_CPUPROFILE until the returned
// function is called (for hack/bench investigations).
func profileCPU() func() {
	path := os.Getenv("SKIFF_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
