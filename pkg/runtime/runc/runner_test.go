package runc_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/skiff/skiff/pkg/runtime/images"
	"github.com/skiff/skiff/pkg/runtime/runc"
	"github.com/skiff/skiff/pkg/runtime/sandbox"
)

// The main thread must never run other goroutines: libcontainer leaves
// threads that joined a container's mount namespace to die, and the main
// thread cannot die (it would be wedged in that namespace, and /proc/self
// with it).
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	runc.InitIfRequested()
	os.Exit(m.Run())
}

// busyboxImage stores an image holding Debian's static busybox.
func busyboxImage(t *testing.T, st *images.Store) images.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static is not installed")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	for _, app := range []string{"sh", "echo", "sleep", "cat", "id", "hostname", "nc"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + app, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
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
	path := filepath.Join(t.TempDir(), "bb.tar")
	tag, _ := name.NewTag("registry.local/busybox:test")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	imgs, err := st.Import(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return imgs[0]
}

func TestRunContainerFromImage(t *testing.T) {
	dir := t.TempDir()
	st, err := images.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	img := busyboxImage(t, st)
	cases := []struct {
		name     string
		args     []string
		uid      uint32
		wantOut  string
		wantCode int32
	}{
		{"echo", []string{"/bin/echo", "hello from a container"}, 0, "hello from a container\n", 0},
		{"exit code", []string{"/bin/sh", "-c", "exit 3"}, 0, "", 3},
		{"user and hostname", []string{"/bin/sh", "-c", "id -u; hostname"}, 1234, "1234\npod-host\n", 0},
		{"killed by signal", []string{"/bin/sleep", "100"}, 0, "", 137},
	}
	runner := &runc.Runner{StateDir: filepath.Join(dir, "state")}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cdir := filepath.Join(dir, "containers", tc.name)
			rootfs, err := runc.MountRootfs(cdir, st.LayerDirs(img))
			if err != nil {
				t.Fatal(err)
			}
			defer runc.UnmountRootfs(cdir)
			spec := runc.BuildSpec(runc.ContainerSpec{
				Process:     runc.ProcessSpec{Args: tc.args, Env: []string{"PATH=/bin"}, UID: tc.uid, GID: tc.uid},
				Hostname:    "pod-host",
				Rootfs:      rootfs,
				CgroupsPath: "/skiff-test/c" + string(rune('a'+i)),
				Resources:   &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptrInt64(64 << 20)}},
			})
			id := strings.ReplaceAll(tc.name, " ", "-")
			c, err := runner.Create(id, spec)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Destroy()
			var out bytes.Buffer
			p, err := runc.Start(c, spec.Process, runc.Stdio{Stdout: &out, Stderr: &out})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantCode == 137 {
				if err := p.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			state, _ := p.Wait()
			if got := runc.ExitCode(state); got != tc.wantCode {
				t.Fatalf("exit code %d, want %d (output %q)", got, tc.wantCode, out.String())
			}
			if out.String() != tc.wantOut {
				t.Fatalf("output %q, want %q", out.String(), tc.wantOut)
			}
		})
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/skiff-test/ca"); !os.IsNotExist(err) {
		t.Fatalf("container cgroup left behind: %v", err)
	}
	if err := runc.RemoveCgroup("/skiff-test"); err != nil {
		t.Fatal(err)
	}
}

func ptrInt64(v int64) *int64 { return &v }

// TestContainersShareASandbox runs two containers in one pod sandbox: they
// share the hostname and talk over the pod's loopback.
func TestContainersShareASandbox(t *testing.T) {
	dir := t.TempDir()
	st, err := images.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	img := busyboxImage(t, st)
	sb, err := sandbox.Create(sandbox.Config{Dir: filepath.Join(dir, "sandbox"), Hostname: "shared-pod"})
	if err != nil {
		t.Fatal(err)
	}
	defer sandbox.Remove(sb.Dir)
	runner := &runc.Runner{StateDir: filepath.Join(dir, "state")}
	start := func(id string, args []string, out io.Writer) (*libcontainer.Container, *libcontainer.Process) {
		cdir := filepath.Join(dir, "containers", id)
		rootfs, err := runc.MountRootfs(cdir, st.LayerDirs(img))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { runc.UnmountRootfs(cdir) })
		spec := runc.BuildSpec(runc.ContainerSpec{
			Process:     runc.ProcessSpec{Args: args, Env: []string{"PATH=/bin"}},
			Rootfs:      rootfs,
			CgroupsPath: "/skiff-test-shared/" + id,
			JoinNamespaces: map[specs.LinuxNamespaceType]string{
				specs.NetworkNamespace: sb.NamespacePath("net"),
				specs.IPCNamespace:     sb.NamespacePath("ipc"),
				specs.UTSNamespace:     sb.NamespacePath("uts"),
			},
			Mounts: []specs.Mount{runc.BindMount(sb.File("hosts"), "/etc/hosts", true)},
		})
		c, err := runner.Create(id, spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Destroy() })
		p, err := runc.Start(c, spec.Process, runc.Stdio{Stdout: out, Stderr: out})
		if err != nil {
			t.Fatal(err)
		}
		return c, p
	}
	var server, client bytes.Buffer
	// The server listens until a connection brings "hello" (under load a
	// connection may come and go empty); the client keeps sending for a
	// while. Only the server's output says whether the loopback is shared.
	_, sp := start("server", []string{"/bin/sh", "-c", "hostname; until nc -l -p 9000 | grep -q hello; do :; done; echo hello"}, &server)
	_, cp := start("client", []string{"/bin/sh", "-c", "for i in $(seq 1 50); do echo hello | nc 127.0.0.1 9000; sleep 0.1; done; exit 0"}, &client)
	done := make(chan struct{})
	go func() { sp.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the server never got the client's message over the pod's loopback; client: %q", client.String())
	}
	cp.Signal(syscall.SIGKILL)
	cp.Wait()
	if server.String() != "shared-pod\nhello\n" {
		t.Fatalf("server saw %q", server.String())
	}
	if err := runc.RemoveCgroup("/skiff-test-shared"); err != nil {
		t.Fatal(err)
	}
}
