package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/pkg/runtime/images"
)

func imagesCmd() *cobra.Command {
	var dataDir string
	open := func() (*images.Store, error) {
		return images.Open(daemon.ImageStoreDir(filepath.Join(dataDir, "agent")))
	}
	cmd := &cobra.Command{Use: "images", Short: "Manage the node's image store"}
	cmd.PersistentFlags().StringVarP(&dataDir, "data-dir", "d", "/var/lib/skiff", "Folder to hold state")
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE...",
		Short: "Import images from docker save or OCI-layout tarballs",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open()
			if err != nil {
				return err
			}
			for _, f := range args {
				imgs, err := st.Import(context.Background(), f)
				if err != nil {
					return err
				}
				for _, img := range imgs {
					fmt.Fprintf(cmd.OutOrStdout(), "imported %s %s\n", shortID(img.ID), strings.Join(img.RepoTags, ","))
				}
			}
			return nil
		},
	}, &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Listing is read-only: it creates no store.
			root := daemon.ImageStoreDir(filepath.Join(dataDir, "agent"))
			st, err := images.OpenExisting(root)
			if err != nil {
				return fmt.Errorf("%w (is --data-dir right?)", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "image store %s\n", root)
			imgs, err := st.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "IMAGE\tTAG\tIMAGE ID\tSIZE")
			for _, img := range imgs {
				size := resource.NewQuantity(img.Size, resource.BinarySI).String()
				if len(img.RepoTags) == 0 {
					fmt.Fprintf(w, "<none>\t<none>\t%s\t%s\n", shortID(img.ID), size)
				}
				for _, t := range img.RepoTags {
					repo, tag := t, "<none>"
					if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
						repo, tag = t[:i], t[i+1:]
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", repo, tag, shortID(img.ID), size)
				}
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use:     "rm IMAGE...",
		Aliases: []string{"remove"},
		Short:   "Remove image references, and images left without any",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open()
			if err != nil {
				return err
			}
			for _, ref := range args {
				img, err := st.Remove(ref)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s (%s)\n", ref, shortID(img.ID))
			}
			_, err = st.PruneLayers(nil)
			return err
		},
	})
	return cmd
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
