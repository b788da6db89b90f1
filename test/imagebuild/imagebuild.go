// Package imagebuild assembles container images from files on this machine,
// without a Docker daemon: layers from in-memory entries or host binaries
// (with the shared libraries they load), images from layers, and
// `docker save` tarballs that `skiff images import` loads. The e2e tests and
// hack/conformance build their images with it.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultPath is the PATH an image built here runs with.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Entry is one file, directory or symlink of a layer. Paths are relative
// to the image root ("bin/sh").
type Entry struct {
	Path string
	Data []byte
	// Mode defaults to 0644 for files, 0755 for directories.
	Mode int64
	// Link makes the entry a symlink to Link.
	Link string
	// Dir makes the entry a directory.
	Dir bool
}

// Layer builds an uncompressed layer from entries; parent directories are
// created as needed (0755), and an entry given twice keeps its last form.
func Layer(entries ...Entry) (v1.Layer, error) {
	byPath := map[string]Entry{}
	for _, e := range entries {
		p := strings.Trim(path.Clean("/"+e.Path), "/")
		if p == "" {
			return nil, fmt.Errorf("layer entry with empty path")
		}
		e.Path = p
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = Entry{Path: d, Dir: true}
			}
		}
		byPath[p] = e
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths) // parents before children
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := byPath[p]
		hdr := &tar.Header{Name: p, Mode: e.Mode, Format: tar.FormatPAX}
		switch {
		case e.Dir:
			hdr.Name, hdr.Typeflag = p+"/", tar.TypeDir
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
		case e.Link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.Link, 0o777
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.Data))
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("layer entry %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// Config is the run configuration of an image.
type Config struct {
	Entrypoint []string
	Cmd        []string
	User       string
	WorkingDir string
	Env        []string // added after DefaultPath
}

// Image stacks layers (bottom first) into a linux/amd64 image.
func Image(cfg Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, fmt.Errorf("stack layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.User = cfg.User
	cf.Config.WorkingDir = cfg.WorkingDir
	cf.Config.Env = append([]string{DefaultPath}, cfg.Env...)
	return mutate.ConfigFile(img, cf)
}

// Save writes images as one `docker save` tarball, each under its tags.
func Save(file string, images map[string]v1.Image) error {
	refs := map[name.Reference]v1.Image{}
	for ref, img := range images {
		tag, err := name.NewTag(ref)
		if err != nil {
			return fmt.Errorf("image tag %q: %w", ref, err)
		}
		refs[tag] = img
	}
	tmp := file + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", file, err)
	}
	return os.Rename(tmp, file)
}
