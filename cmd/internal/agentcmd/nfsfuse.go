package agentcmd

import (
	"github.com/spf13/cobra"

	"github.com/skiff/skiff/pkg/volume/nfs"
)

// NFSFuseCommand is `skiff nfs-fuse`, the helper the kubelet starts, in
// a session of its own, to serve an NFS export through FUSE on nodes
// whose kernel has no NFS client. It exits when the mount goes.
func NFSFuseCommand() *cobra.Command {
	var src nfs.Source
	cmd := &cobra.Command{
		Use:    nfs.HelperCommand + " MOUNTPOINT",
		Short:  "Serve an NFSv3 export at MOUNTPOINT through FUSE (started by the kubelet)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return nfs.RunHelper(src, args[0])
		},
	}
	cmd.Flags().StringVar(&src.Server, "server", "", "NFS server host or address")
	cmd.Flags().StringVar(&src.Path, "path", "/", "Exported path")
	cmd.Flags().IntVar(&src.Port, "port", 0, "Port of MOUNT and NFS (default: ask the portmapper, else 2049)")
	cmd.Flags().BoolVar(&src.ReadOnly, "read-only", false, "Mount read-only")
	_ = cmd.MarkFlagRequired("server")
	return cmd
}
