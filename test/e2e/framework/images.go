package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff/skiff/test/imagebuild"
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
	entries := make([]imagebuild.Entry, len(files))
	for i, f := range files {
		entries[i] = imagebuild.Entry{Path: f.Path, Data: f.Data, Mode: f.Mode}
	}
	layer, err := imagebuild.Layer(entries...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.Image(imagebuild.Config{Entrypoint: entrypoint}, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// SaveImage writes img as a `docker save` tarball tagged ref.
func SaveImage(t testing.TB, img v1.Image, ref, path string) {
	t.Helper()
	if err := imagebuild.Save(path, map[string]v1.Image{ref: img}); err != nil {
		t.Fatal(err)
	}
}

// BusyboxImage builds an image of Debian's static busybox with every
// applet linked in /bin; it skips the test when busybox-static is missing.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	if _, err := os.Stat(imagebuild.BusyboxBinary); err != nil {
		t.Skip("busybox-static is not installed")
	}
	entries, err := imagebuild.Busybox(imagebuild.BusyboxBinary)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := imagebuild.Layer(entries...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.Image(imagebuild.Config{Cmd: []string{"/bin/sh"}}, layer)
	if err != nil {
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
