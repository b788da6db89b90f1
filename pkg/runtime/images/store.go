// Package images is a node's image store: images imported from `docker
// save` or OCI-layout tarballs or pulled from registries, recorded by
// reference and ID, with every layer unpacked once into a content-addressed
// directory (by diffID) that overlayfs mounts as a read-only lower layer
// for each container using it.
//
// Layout under the store root:
//
//	layers/sha256/<diffID>/   unpacked layer, shared by every image using it
//	images/sha256/<ID>.json   image record: references, layers, config
//	lock                      flock held while records change, so `skiff
//	                          images import` can run beside the agent
package images

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"
)

// Image is a stored image.
type Image struct {
	// ID is the config digest, "sha256:...".
	ID string `json:"id"`
	// RepoTags are normalized references: "docker.io/library/busybox:1.36".
	RepoTags []string `json:"repoTags,omitempty"`
	// RepoDigests are "repo@sha256:..." references of pulled manifests.
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Layers are the layers' diffIDs, bottom first.
	Layers []string `json:"layers"`
	// Config is the image configuration (entrypoint, env, user, ...).
	Config v1.Config `json:"config"`
	// Size is the sum of the layers' uncompressed sizes.
	Size int64 `json:"size"`
	// Created is when the image was added to the store.
	Created time.Time `json:"created"`
}

// Store is an image store rooted at a directory.
type Store struct {
	root string
}

// ErrNotFound means no image has the reference or ID.
var ErrNotFound = errors.New("image not found")

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"layers/sha256", "images/sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// OpenExisting opens the store at root for reading only: it creates
// nothing, and fails when there is no store there.
func OpenExisting(root string) (*Store, error) {
	for _, d := range []string{"layers/sha256", "images/sha256"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("no image store at %s", root)
		}
	}
	return &Store{root: root}, nil
}

// Normalize returns the canonical form of an image reference, as
// containerd and kubectl describe show it: "busybox" becomes
// "docker.io/library/busybox:latest".
func Normalize(ref string) (string, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	repo := r.Context().Name()
	repo = strings.Replace(repo, name.DefaultRegistry+"/", "docker.io/", 1)
	switch r := r.(type) {
	case name.Digest:
		return repo + "@" + r.DigestStr(), nil
	case name.Tag:
		return repo + ":" + r.TagStr(), nil
	}
	return repo, nil
}

// lock takes the store's cross-process lock.
func (s *Store) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

func (s *Store) recordPath(id string) string {
	return filepath.Join(s.root, "images", "sha256", strings.TrimPrefix(id, "sha256:")+".json")
}

// LayerDir is where a layer (by diffID) is unpacked.
func (s *Store) LayerDir(diffID string) string {
	return filepath.Join(s.root, "layers", "sha256", strings.TrimPrefix(diffID, "sha256:"))
}

// LayerDirs returns an image's layer directories, top-most first, as
// overlayfs wants its lowerdir list.
func (s *Store) LayerDirs(img Image) []string {
	out := make([]string, 0, len(img.Layers))
	for i := len(img.Layers) - 1; i >= 0; i-- {
		out = append(out, s.LayerDir(img.Layers[i]))
	}
	return out
}

// List returns every image, newest first.
func (s *Store) List() ([]Image, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "images", "sha256"))
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		img, err := s.read(filepath.Join(s.root, "images", "sha256", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

func (s *Store) read(path string) (Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Image{}, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return Image{}, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// Get finds an image by reference, digest reference, or ID (full or a
// prefix of at least 12 hex digits).
func (s *Store) Get(ref string) (Image, error) {
	imgs, err := s.List()
	if err != nil {
		return Image{}, err
	}
	norm, nerr := Normalize(ref)
	for _, img := range imgs {
		id := strings.TrimPrefix(img.ID, "sha256:")
		q := strings.TrimPrefix(ref, "sha256:")
		if len(q) >= 12 && strings.HasPrefix(id, q) {
			return img, nil
		}
		if nerr == nil && (slices.Contains(img.RepoTags, norm) || slices.Contains(img.RepoDigests, norm)) {
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// add unpacks img's missing layers and records it under refs, taking the
// references away from any image that had them.
func (s *Store) add(img v1.Image, refs, digests []string) (Image, error) {
	cfgName, err := img.ConfigName()
	if err != nil {
		return Image{}, fmt.Errorf("image config digest: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("image config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("image layers: %w", err)
	}
	rec := Image{ID: cfgName.String(), Config: cfg.Config, Created: time.Now().UTC()}
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return Image{}, err
		}
		size, err := s.ensureLayer(l, diffID.String())
		if err != nil {
			return Image{}, err
		}
		rec.Layers = append(rec.Layers, diffID.String())
		rec.Size += size
	}
	unlock, err := s.lock()
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if old, err := s.read(s.recordPath(rec.ID)); err == nil {
		rec.RepoTags, rec.RepoDigests, rec.Created = old.RepoTags, old.RepoDigests, old.Created
	}
	all, err := s.List()
	if err != nil {
		return Image{}, err
	}
	for _, other := range all {
		if other.ID == rec.ID {
			continue
		}
		keep := other.RepoTags[:0]
		for _, t := range other.RepoTags {
			if !slices.Contains(refs, t) {
				keep = append(keep, t)
			}
		}
		if len(keep) != len(other.RepoTags) {
			other.RepoTags = keep
			if err := s.write(other); err != nil {
				return Image{}, err
			}
		}
	}
	for _, r := range refs {
		if !slices.Contains(rec.RepoTags, r) {
			rec.RepoTags = append(rec.RepoTags, r)
		}
	}
	for _, d := range digests {
		if !slices.Contains(rec.RepoDigests, d) {
			rec.RepoDigests = append(rec.RepoDigests, d)
		}
	}
	return rec, s.write(rec)
}

func (s *Store) write(img Image) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "record")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.recordPath(img.ID))
}

// ensureLayer unpacks a layer unless it already is, and returns its
// unpacked size.
func (s *Store) ensureLayer(l v1.Layer, diffID string) (int64, error) {
	dir := s.LayerDir(diffID)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dirSize(dir), nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer rc.Close()
	if err := unpack(rc, tmp); err != nil {
		return 0, fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	// Drain so a digest-checking reader verifies the whole layer.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) && !isNotEmpty(err) {
		return 0, err
	}
	return dirSize(dir), nil
}

func isNotEmpty(err error) bool { return errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) }

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// PullOptions configure a pull.
type PullOptions struct {
	// Auth authenticates to the registry; anonymous when nil.
	Auth authn.Authenticator
}

// Pull fetches ref (linux, this machine's architecture) and stores it.
// Registries on loopback are reached over plain HTTP.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (Image, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return Image{}, err
	}
	r, err := name.ParseReference(norm, name.WeakValidation)
	if err != nil {
		return Image{}, err
	}
	auth := opts.Auth
	if auth == nil {
		auth = authn.Anonymous
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuth(auth),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return Image{}, err
	}
	repo := strings.SplitN(norm, "@", 2)[0]
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	var tags []string
	if _, isTag := r.(name.Tag); isTag {
		tags = []string{norm}
	}
	return s.add(img, tags, []string{repo + "@" + digest.String()})
}

// Remove untags ref, or deletes the image with that ID. Layers stay until
// PruneLayers finds them unused.
func (s *Store) Remove(ref string) (Image, error) {
	img, err := s.Get(ref)
	if err != nil {
		return Image{}, err
	}
	unlock, err := s.lock()
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	norm, _ := Normalize(ref)
	if slices.Contains(img.RepoTags, norm) && len(img.RepoTags) > 1 {
		img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return t == norm })
		return img, s.write(img)
	}
	return img, os.Remove(s.recordPath(img.ID))
}

// PruneLayers removes unpacked layers no image refers to, except those in
// inUse (layers of running containers whose image was removed).
func (s *Store) PruneLayers(inUse map[string]bool) (int, error) {
	unlock, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	imgs, err := s.List()
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	for k := range inUse {
		used[strings.TrimPrefix(k, "sha256:")] = true
	}
	for _, img := range imgs {
		for _, l := range img.Layers {
			used[strings.TrimPrefix(l, "sha256:")] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.root, "layers", "sha256"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !used[e.Name()] {
			if err := os.RemoveAll(filepath.Join(s.root, "layers", "sha256", e.Name())); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// gunzipToTemp decompresses a .tar.gz into a temporary file.
func (s *Store) gunzipToTemp(path string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	out, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "import-*.tar")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, zr)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}
