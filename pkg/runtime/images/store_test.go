package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/skiff/skiff/pkg/runtime/images"
)

type entry struct {
	name, body string
	dir        bool
}

func layer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.dir {
			hdr = &tar.Header{Name: e.name, Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if !e.dir {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func image(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg.Config.Entrypoint = []string{"/bin/app"}
	cfg.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImportDockerSaveSharesLayersAndAppliesWhiteouts(t *testing.T) {
	st, err := images.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := layer(t, entry{name: "bin/", dir: true}, entry{name: "bin/app", body: "v1"}, entry{name: "etc/", dir: true}, entry{name: "etc/old", body: "x"}, entry{name: "data/", dir: true}, entry{name: "data/a", body: "a"})
	top := layer(t, entry{name: "etc/.wh.old"}, entry{name: "data/.wh..wh..opq"}, entry{name: "data/b", body: "b"})
	dir := t.TempDir()
	tag1, _ := name.NewTag("registry.local/app:v1")
	tag2, _ := name.NewTag("registry.local/app:v2")
	tarPath := filepath.Join(dir, "app.tar")
	refs := map[name.Reference]v1.Image{tag1: image(t, base), tag2: image(t, base, top)}
	if err := tarball.MultiRefWriteToFile(tarPath, refs); err != nil {
		t.Fatal(err)
	}
	imgs, err := st.Import(context.Background(), tarPath)
	if err != nil || len(imgs) != 2 {
		t.Fatalf("import: %v %d", err, len(imgs))
	}
	v2, err := st.Get("registry.local/app:v2")
	if err != nil || len(v2.Layers) != 2 || v2.Config.Entrypoint[0] != "/bin/app" {
		t.Fatalf("get v2: %v %+v", err, v2)
	}
	v1img, _ := st.Get("registry.local/app:v1")
	if v1img.Layers[0] != v2.Layers[0] {
		t.Fatal("the shared base layer has two identities")
	}
	entries, _ := os.ReadDir(filepath.Dir(st.LayerDir(v2.Layers[0])))
	if len(entries) != 2 {
		t.Fatalf("%d layer dirs, want 2 (base shared)", len(entries))
	}
	topDir := st.LayerDir(v2.Layers[1])
	var stat unix.Stat_t
	if err := unix.Lstat(filepath.Join(topDir, "etc/old"), &stat); err != nil || stat.Mode&unix.S_IFMT != unix.S_IFCHR || stat.Rdev != 0 {
		t.Fatalf("whiteout not a 0:0 char device: %v %+v", err, stat)
	}
	if v, err := unix.Getxattr(filepath.Join(topDir, "data"), "trusted.overlay.opaque", make([]byte, 1)); err != nil || v != 1 {
		t.Fatalf("opaque dir xattr: %v", err)
	}
	dirs := st.LayerDirs(v2)
	if dirs[0] != topDir {
		t.Fatal("LayerDirs must list the top layer first")
	}

	// Re-tagging moves the tag; removing untags, then deletes.
	if _, err := st.Remove("registry.local/app:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get("registry.local/app:v1"); !errors.Is(err, images.ErrNotFound) {
		t.Fatalf("removed image still found: %v", err)
	}
	if n, err := st.PruneLayers(nil); err != nil || n != 0 {
		t.Fatalf("prune removed %d layers still used by v2: %v", n, err)
	}
}

func TestImportOCILayoutAndPullFromLocalRegistry(t *testing.T) {
	st, err := images.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := image(t, layer(t, entry{name: "bin/", dir: true}, entry{name: "bin/app", body: "oci"}))

	// OCI layout tarball, named by containerd's annotation.
	lp, err := layout.Write(t.TempDir(), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "registry.local/oci:1.0"})); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, string(lp), tarPath)
	if imgs, err := st.Import(context.Background(), tarPath); err != nil || len(imgs) != 1 || imgs[0].RepoTags[0] != "registry.local/oci:1.0" {
		t.Fatalf("OCI import: %v %+v", err, imgs)
	}

	// A registry on loopback over plain HTTP.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/test/app:v3"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	pulled, err := st.Pull(context.Background(), ref, images.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled.RepoDigests) != 1 || !strings.Contains(pulled.RepoDigests[0], "@sha256:") || !slices.Contains(pulled.RepoTags, ref) {
		t.Fatalf("pulled: %+v", pulled)
	}
	if got, err := st.Get(pulled.RepoDigests[0]); err != nil || got.ID != pulled.ID {
		t.Fatalf("get by digest: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                     "docker.io/library/busybox:latest",
		"busybox:1.36":                "docker.io/library/busybox:1.36",
		"127.0.0.1:5000/app":          "127.0.0.1:5000/app:latest",
		"quay.io/x/y@sha256:" + zeros: "quay.io/x/y@sha256:" + zeros,
	} {
		if got, err := images.Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

var zeros = strings.Repeat("0", 64)

func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	defer tw.Close()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		hdr, _ := tar.FileInfoHeader(fi, "")
		hdr.Name = rel
		tw.WriteHeader(hdr)
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			tw.Write(b)
		}
		return nil
	})
}

// OpenExisting reads a store and never creates one.
func TestOpenExistingCreatesNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "none")
	if _, err := images.OpenExisting(root); err == nil {
		t.Fatal("opened a store that does not exist")
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("OpenExisting created %s: %v", root, err)
	}
	if _, err := images.Open(root); err != nil {
		t.Fatal(err)
	}
	if _, err := images.OpenExisting(root); err != nil {
		t.Fatalf("existing store: %v", err)
	}
}
