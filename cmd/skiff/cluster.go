package main

import (
	"context"
	"fmt"

	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff/skiff/pkg/localcluster"
)

// clusterCmd is `skiff cluster`: local multi-node clusters, every node in
// a network namespace of its own (see pkg/localcluster).
func clusterCmd() *cobra.Command {
	var root string
	mgr := func(cmd *cobra.Command) *localcluster.Manager {
		return &localcluster.Manager{Index: localcluster.Index{Root: root}, Progress: cmd.ErrOrStderr()}
	}
	cmd := &cobra.Command{Use: "cluster", Short: "Run local multi-node clusters, a network namespace per node"}
	cmd.PersistentFlags().StringVar(&root, "clusters-dir", localcluster.DefaultRoot, "Where clusters and their index live")
	_ = cmd.PersistentFlags().MarkHidden("clusters-dir")

	var o localcluster.Options
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a cluster and wait for its nodes to be Ready; prints its kubeconfig path last",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			c, err := mgr(cmd).Create(ctx, o)
			if err != nil {
				if c != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "cluster %s did not come up; `skiff cluster delete %s` removes it\n", o.Name, o.Name)
				}
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "cluster %s up in %.1fs\n", c.Name, time.Since(start).Seconds())
			fmt.Fprintln(cmd.OutOrStdout(), c.Kubeconfig)
			return nil
		},
	}
	f := create.Flags()
	f.IntVar(&o.Servers, "servers", 1, "Number of server nodes (only 1 for now)")
	f.IntVar(&o.Agents, "agents", 0, "Number of agent nodes")
	f.StringVar(&o.Dir, "dir", "", "Folder for the nodes' data, the kubeconfig and the state (default "+localcluster.DefaultRoot+"/NAME)")
	f.StringVar(&o.Subnet, "subnet", "", "The nodes' network on the host bridge (default a free 10.200.X.0/24)")
	f.StringVar(&o.ClusterCIDR, "cluster-cidr", "10.42.0.0/16", "Pod network")
	f.StringVar(&o.ServiceCIDR, "service-cidr", "10.43.0.0/16", "Service network")
	f.IntVar(&o.APIPort, "api-port", 0, "Host port at 127.0.0.1 for the API server (default a free one)")
	f.StringArrayVar(&o.Images, "image", nil, "Image tarball every node imports at start (repeatable)")
	f.StringArrayVar(&o.ControllerMgrArg, "kube-controller-manager-arg", nil, "Passed to the servers as --kube-controller-manager-arg (repeatable)")
	f.StringArrayVar(&o.APIServerArg, "kube-apiserver-arg", nil, "Passed to the servers as --kube-apiserver-arg (repeatable)")
	f.DurationVar(&o.Wait, "wait", 60*time.Second, "How long to wait for every node to be Ready (0: do not wait)")

	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List clusters",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := mgr(cmd).Index.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tSERVERS\tAGENTS\tAPI\tSTATUS")
			for _, c := range cs {
				fmt.Fprintf(w, "%s\t%d\t%d\thttps://127.0.0.1:%d\t%s\n", c.Name, c.Count(localcluster.RoleServer), c.Count(localcluster.RoleAgent), c.APIPort, c.Status())
			}
			return w.Flush()
		},
	}
	kubeconfig := &cobra.Command{
		Use:   "kubeconfig NAME",
		Short: "Print the path of a cluster's kubeconfig",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := mgr(cmd).Index.Load(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), c.Kubeconfig)
			return nil
		},
	}
	del := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Stop a cluster and remove everything it made",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if err := mgr(cmd).Delete(context.Background(), name); err != nil {
					return err
				}
			}
			return nil
		},
	}
	imp := &cobra.Command{
		Use:   "import NAME FILE...",
		Short: "Import image tarballs into every node of a cluster",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return mgr(cmd).Import(context.Background(), args[0], args[1:])
		},
	}
	node := &cobra.Command{Use: "node", Short: "Inject faults into a cluster's nodes"}
	for _, a := range []struct {
		action localcluster.NodeAction
		short  string
	}{
		{localcluster.NodeStop, "Stop a node's skiff with SIGTERM (its containers keep running)"},
		{localcluster.NodeStart, "Start a stopped or killed node again, with its data"},
		{localcluster.NodeKill, "SIGKILL a node's skiff and every process of the node"},
		{localcluster.NodePartition, "Cut a node off the cluster's network (everything keeps running)"},
		{localcluster.NodeHeal, "Reconnect a partitioned node"},
	} {
		node.AddCommand(&cobra.Command{
			Use:   string(a.action) + " CLUSTER NODE",
			Short: a.short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return mgr(cmd).Node(context.Background(), args[0], args[1], a.action)
			},
		})
	}

	var listen, target string
	proxy := &cobra.Command{
		Use:    "proxy",
		Short:  "Forward TCP from a host address to a node's API server",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return localcluster.Forward(ctx, listen, target)
		},
	}
	proxy.Flags().StringVar(&listen, "listen", "", "Address to listen on")
	proxy.Flags().StringVar(&target, "target", "", "Address to forward to")
	// Unused but for ps: the cluster's dir marks the process as the cluster's.
	proxy.Flags().String("cluster-dir", "", "The cluster's dir")

	var agentDir string
	nodeCleanup := &cobra.Command{
		Use:    "node-cleanup",
		Short:  "Remove the pods, runtime, mounts and cgroups of a stopped node (run in its namespace)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			return localcluster.CleanupNode(ctx, agentDir)
		},
	}
	nodeCleanup.Flags().StringVar(&agentDir, "agent-dir", "", "The node's agent dir")
	_ = nodeCleanup.MarkFlagRequired("agent-dir")

	cmd.AddCommand(create, list, kubeconfig, del, imp, node, proxy, nodeCleanup)
	return cmd
}
