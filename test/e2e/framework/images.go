package framework

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ImageFile is a file to put into a test image.
type ImageFile struct {
	Path string
	Data []byte
	Mode int64
}

// BuildImage builds a one-layer image from files with the given entrypoint.
func BuildImage(t testing.TB, entrypoint []string, files ...ImageFile) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := dirOf(f.Path); d != ""; d = dirOf(d) {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
					t.Fatal(err)
				}
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Path, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(f.Data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.Data)
	}
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

// SaveImage writes img as a `docker save` tarball tagged ref.
func SaveImage(t testing.TB, img v1.Image, ref, path string) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// busyboxApplets are the busybox commands linked into the test image.
var busyboxApplets = []string{"sh", "echo", "cat", "sleep", "ls", "env", "id", "hostname", "wget", "nc", "dd", "true", "false", "kill", "ps", "head", "tail", "grep", "date", "mkdir", "rm", "touch", "test", "sed", "awk", "printf", "seq", "yes", "httpd", "nslookup", "tar", "md5sum", "sha256sum"}

// BusyboxImage builds an image of Debian's static busybox with its common
// applets linked in /bin; it skips the test when busybox-static is missing.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static is not installed")
	}
	files := []ImageFile{{Path: "bin/busybox", Data: bb, Mode: 0o755}, {Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")}, {Path: "etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\n")}}
	img := BuildImage(t, nil, files...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, a := range busyboxApplets {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
	tw.Close()
	data := buf.Bytes()
	links, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, links); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg.Config.Entrypoint = nil
	cfg.Config.Cmd = []string{"/bin/sh"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

var testServer struct {
	once sync.Once
	bin  []byte
	err  error
}

// TestServerImage builds test/images/testserver as a static binary (once
// per test process) and returns an image running it on port 8080.
func TestServerImage(t testing.TB) v1.Image {
	t.Helper()
	testServer.once.Do(func() {
		dir, err := os.MkdirTemp("", "skiff-testserver-")
		if err != nil {
			testServer.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "testserver")
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "..", "..", "images", "testserver")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			testServer.err = fmt.Errorf("go build testserver: %v\n%s", err, b)
			return
		}
		testServer.bin, testServer.err = os.ReadFile(out)
	})
	if testServer.err != nil {
		t.Fatal(testServer.err)
	}
	return BuildImage(t, []string{"/testserver"}, ImageFile{Path: "testserver", Data: testServer.bin, Mode: 0o755})
}
