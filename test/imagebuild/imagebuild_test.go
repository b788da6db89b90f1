package imagebuild

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerFiles lists a layer's entries as path -> type flag and link.
func layerFiles(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = hdr
	}
}

func TestLayerCreatesParentsBeforeChildrenAndKeepsLinks(t *testing.T) {
	l, err := Layer(
		Entry{Path: "/usr/share/x/index.html", Data: []byte("hi")},
		Entry{Path: "agnhost-2", Link: "agnhost"},
		Entry{Path: "tmp", Dir: true, Mode: 0o1777},
	)
	if err != nil {
		t.Fatal(err)
	}
	files := layerFiles(t, l)
	for _, d := range []string{"usr/", "usr/share/", "usr/share/x/"} {
		if h := files[d]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o755 {
			t.Errorf("parent %s: %+v", d, h)
		}
	}
	if h := files["usr/share/x/index.html"]; h == nil || h.Size != 2 || h.Mode != 0o644 {
		t.Errorf("file: %+v", h)
	}
	if h := files["agnhost-2"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "agnhost" {
		t.Errorf("link: %+v", h)
	}
	if h := files["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp: %+v", h)
	}
	if _, err := Layer(Entry{Path: "/"}); err == nil {
		t.Error("an entry for the root was accepted")
	}
}

func TestHostBinariesCarryTheirLibrariesAndLoader(t *testing.T) {
	if _, err := os.Stat("/usr/bin/bash"); err != nil {
		t.Skip("no /usr/bin/bash")
	}
	entries, err := HostBinaries("/usr/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	all := strings.Join(paths, " ")
	for _, want := range []string{"/usr/bin/bash", "libc.so.6", "ld-linux-x86-64.so.2"} {
		if !strings.Contains(all, want) {
			t.Errorf("entries %v lack %s", paths, want)
		}
	}
}

func TestSaveWritesEveryTagAndImageKeepsConfig(t *testing.T) {
	l, err := Layer(Entry{Path: "hello", Data: []byte("x"), Mode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Image(Config{Entrypoint: []string{"/hello"}, Cmd: []string{"pause"}, User: "1234"}, l)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "images.tar")
	refs := []string{"registry.k8s.io/e2e-test-images/agnhost:2.66.1", "registry.k8s.io/e2e-test-images/agnhost:2.55"}
	if err := Save(file, map[string]v1.Image{refs[0]: img, refs[1]: img}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		tag, _ := name.NewTag(ref)
		got, err := tarball.ImageFromPath(file, &tag)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		cf, err := got.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if strings.Join(c.Entrypoint, " ") != "/hello" || strings.Join(c.Cmd, " ") != "pause" || c.User != "1234" || c.Env[0] != DefaultPath || cf.Architecture != "amd64" {
			t.Errorf("%s config: %+v", ref, cf)
		}
	}
	if err := Save(file, map[string]v1.Image{"Not A Tag!": img}); err == nil {
		t.Error("a bad reference was accepted")
	}
}

func TestBusyboxLinksEveryApplet(t *testing.T) {
	if _, err := os.Stat(BusyboxBinary); err != nil {
		t.Skip("busybox-static is not installed")
	}
	entries, err := Busybox(BusyboxBinary)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]bool{}
	for _, e := range entries {
		if e.Link == "busybox" {
			links[e.Path] = true
		}
	}
	for _, a := range []string{"bin/sh", "bin/wget", "bin/nslookup", "bin/httpd", "bin/mkfifo"} {
		if !links[a] {
			t.Errorf("no applet link %s", a)
		}
	}
	if _, err := Busybox("/nonexistent/busybox"); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("missing busybox: %v", err)
	}
}
