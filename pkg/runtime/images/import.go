package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// OCI annotations that name an image in a layout's index.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Import loads every image of a `docker save` or OCI-layout tarball
// (optionally gzip-compressed) and returns them.
func (s *Store) Import(ctx context.Context, path string) ([]Image, error) {
	if strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".tgz") {
		tmp, err := s.gunzipToTemp(path)
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp)
		path = tmp
	}
	kind, err := tarKind(path)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "docker":
		return s.importDocker(ctx, path)
	case "oci":
		return s.importOCI(ctx, path)
	}
	return nil, fmt.Errorf("%s: neither a docker save nor an OCI layout tarball (no manifest.json or index.json)", path)
}

// tarKind tells a docker save tarball (manifest.json) from an OCI layout
// (index.json) by the files at its top.
func tarKind(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	kind := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return kind, nil
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		switch filepath.Clean(hdr.Name) {
		case "manifest.json":
			return "docker", nil
		case "index.json":
			kind = "oci"
		}
	}
}

func (s *Store) importDocker(ctx context.Context, path string) ([]Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	manifest, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Image
	for _, desc := range manifest {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var tag *name.Tag
		var refs []string
		for _, t := range desc.RepoTags {
			parsed, err := name.NewTag(t, name.WeakValidation)
			if err != nil {
				return out, fmt.Errorf("%s: tag %q: %w", path, t, err)
			}
			if tag == nil {
				tag = &parsed
			}
			norm, err := Normalize(t)
			if err != nil {
				return out, err
			}
			refs = append(refs, norm)
		}
		if tag == nil && len(manifest) > 1 {
			return out, fmt.Errorf("%s: untagged image among several", path)
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		rec, err := s.add(img, refs, nil)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func (s *Store) importOCI(ctx context.Context, path string) ([]Image, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "oci")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	err = unpackPlain(f, dir)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, desc := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		img, err := imageFor(idx, desc)
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		var refs []string
		if n := refName(desc); n != "" {
			norm, err := Normalize(n)
			if err != nil {
				return out, err
			}
			refs = append(refs, norm)
		}
		rec, err := s.add(img, refs, nil)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// refName is the image name an index entry carries: containerd's full
// name, else the OCI ref name when it is a full reference.
func refName(desc v1.Descriptor) string {
	if n := desc.Annotations[annotationContainerdName]; n != "" {
		return n
	}
	if n := desc.Annotations[annotationRefName]; strings.ContainsAny(n, "/:") {
		return n
	}
	return ""
}

// imageFor resolves an index entry to this platform's image.
func imageFor(idx v1.ImageIndex, desc v1.Descriptor) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return idx.Image(desc.Digest)
	}
	child, err := idx.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range cm.Manifests {
		if m.Platform == nil || (m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH) {
			return imageFor(child, m)
		}
	}
	return nil, fmt.Errorf("no linux/%s image in index %s", runtime.GOARCH, desc.Digest)
}

// unpackPlain extracts regular files and directories of an OCI layout
// tarball (nothing else belongs in one).
func unpackPlain(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + hdr.Name)
		target := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// ImportDir imports every *.tar, *.tar.gz and *.tgz in dir (the agent's
// drop-in images directory), returning what it imported and the first
// error per file.
func (s *Store) ImportDir(ctx context.Context, dir string) ([]Image, map[string]error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, map[string]error{dir: err}
	}
	var out []Image
	errs := map[string]error{}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".tar") || strings.HasSuffix(n, ".tar.gz") || strings.HasSuffix(n, ".tgz")) {
			continue
		}
		imgs, err := s.Import(ctx, filepath.Join(dir, n))
		if err != nil {
			errs[n] = err
		}
		out = append(out, imgs...)
	}
	return out, errs
}
