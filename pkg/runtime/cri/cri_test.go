package cri_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/skiff/skiff/pkg/runtime/cri"
	"github.com/skiff/skiff/pkg/runtime/images"
	"github.com/skiff/skiff/pkg/runtime/runc"
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

func importBusybox(t *testing.T, st *images.Store) {
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
	for _, app := range []string{"sh", "echo", "sleep", "cat", "dd", "hostname", "stty"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + app, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
	tw.WriteHeader(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))})
	tw.Write([]byte(passwd))
	tw.Close()
	data := buf.Bytes()
	layer, _ := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	img, _ := mutate.AppendLayers(empty.Image, layer)
	cfg, _ := img.ConfigFile()
	cfg.Config.Cmd = []string{"/bin/sh"}
	cfg.Config.Env = []string{"PATH=/bin", "FROM_IMAGE=yes"}
	img, _ = mutate.ConfigFile(img, cfg)
	path := filepath.Join(t.TempDir(), "bb.tar")
	tag, _ := name.NewTag("registry.local/busybox:cri")
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Import(context.Background(), path); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	rt  internalapi.RuntimeService
	img internalapi.ImageManagerService
}

func start(t *testing.T) (*fixture, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := images.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	importBusybox(t, st)
	cgroup := "/skiff-cri-test-" + filepath.Base(dir)
	svc, err := cri.New(cri.Config{Root: filepath.Join(dir, "runtime"), Images: st, CgroupRoot: cgroup, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(dir, "cri.sock")
	go svc.Serve(ctx, sock)
	t.Cleanup(func() { cancel(); runc.RemoveCgroup(cgroup) })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rt, err := remote.NewRemoteRuntimeService(context.Background(), "unix://"+sock, 10*time.Second, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	im, err := remote.NewRemoteImageService(context.Background(), "unix://"+sock, 10*time.Second, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	// Whatever a failed test left, the sandboxes go (mounts, cgroups).
	t.Cleanup(func() {
		sbs, _ := rt.ListPodSandbox(context.Background(), nil)
		for _, sb := range sbs {
			rt.StopPodSandbox(context.Background(), sb.Id)
			rt.RemovePodSandbox(context.Background(), sb.Id)
		}
	})
	return &fixture{rt: rt, img: im}, dir
}

func waitExited(t *testing.T, rt internalapi.RuntimeService, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	for i := 0; i < 200; i++ {
		st, err := rt.ContainerStatus(context.Background(), id, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.Status
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("container %s did not exit", id)
	return nil
}

func TestPodLifecycleThroughCRI(t *testing.T) {
	f, dir := start(t)
	ctx := context.Background()
	images, err := f.img.ListImages(ctx, nil)
	if err != nil || len(images) != 1 || images[0].RepoTags[0] != "registry.local/busybox:cri" {
		t.Fatalf("ListImages: %v %+v", err, images)
	}
	logDir := filepath.Join(dir, "logs")
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-1"},
		Hostname:     "web",
		LogDirectory: logDir,
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10"}, Searches: []string{"default.svc.cluster.local"}},
	}
	sbID, err := f.rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, cmd []string, mem int64) string {
		t.Helper()
		cfg := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: "registry.local/busybox:cri"},
			Command:  cmd,
			Envs:     []*runtimeapi.KeyValue{{Key: "GREETING", Value: []byte("hi")}},
			LogPath:  name + "/0.log",
			Linux:    &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: mem}},
		}
		id, err := f.rt.CreateContainer(ctx, sbID, cfg, sbCfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.rt.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}

	// A long-running container: logs, exec, stop with SIGTERM.
	app := create("app", []string{"/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; echo $GREETING from $FROM_IMAGE; echo oops >&2; while true; do sleep 0.1; done"}, 0)
	st, err := f.rt.ContainerStatus(ctx, app, false)
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("status: %v %+v", err, st)
	}
	stdout, _, err := f.rt.ExecSync(ctx, app, []string{"/bin/sh", "-c", "hostname; cat /etc/resolv.conf"}, 5*time.Second)
	if err != nil || !strings.HasPrefix(string(stdout), "web\n") || !strings.Contains(string(stdout), "nameserver 10.43.0.10") {
		t.Fatalf("exec: %v %q", err, stdout)
	}
	// Log rotation: the kubelet renames the file, output goes on in a
	// new one after ReopenContainerLog.
	logPath := filepath.Join(logDir, "app/0.log")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.ReopenContainerLog(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.StopContainer(ctx, app, 5); err != nil {
		t.Fatal(err)
	}
	if got := waitExited(t, f.rt, app); got.ExitCode != 0 || got.Reason != "Completed" {
		t.Fatalf("stopped container: exit %d reason %s", got.ExitCode, got.Reason)
	}
	rotated, _ := os.ReadFile(logPath + ".1")
	if !strings.Contains(string(rotated), " stdout F hi from yes\n") || !strings.Contains(string(rotated), " stderr F oops\n") {
		t.Fatalf("CRI log file:\n%s", rotated)
	}
	if logs, _ := os.ReadFile(logPath); !strings.HasSuffix(string(logs), " stdout F bye\n") || strings.Contains(string(logs), "oops") {
		t.Fatalf("CRI log file after reopening:\n%s", logs)
	}
	if err := f.rt.ReopenContainerLog(ctx, app); err == nil {
		t.Fatal("reopened the log of an exited container")
	}

	// Exit codes and OOM kills.
	if got := waitExited(t, f.rt, create("fail", []string{"/bin/sh", "-c", "exit 3"}, 0)); got.ExitCode != 3 || got.Reason != "Error" {
		t.Fatalf("failing container: %+v", got)
	}
	if got := waitExited(t, f.rt, create("ok", []string{"/bin/sh", "-c", "true"}, 0)); got.ExitCode != 0 || got.Reason != "Completed" {
		t.Fatalf("completed container: %+v", got)
	}
	if got := waitExited(t, f.rt, create("hog", []string{"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=160M", "count=1"}, 48<<20)); got.Reason != "OOMKilled" || got.ExitCode != 137 {
		t.Fatalf("memory hog: exit %d reason %q", got.ExitCode, got.Reason)
	}

	// Removing the sandbox removes everything.
	if err := f.rt.StopPodSandbox(ctx, sbID); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.RemovePodSandbox(ctx, sbID); err != nil {
		t.Fatal(err)
	}
	if cs, _ := f.rt.ListContainers(ctx, nil); len(cs) != 0 {
		t.Fatalf("containers left: %d", len(cs))
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), dir) {
		t.Fatalf("mounts left under %s:\n%s", dir, mi)
	}
}
