package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestContainerLogsRotate runs a chatty container with a small
// container-log-max-size: its log is rotated (older files gzipped, at most
// container-log-max-files kept) while `kubectl logs -f` follows it across
// the rotations without losing or repeating a line.
func TestContainerLogsRotate(t *testing.T) {
	c := nodeCluster(t, "--kubelet-arg", "container-log-max-size=4Ki", "--kubelet-arg", "container-log-max-files=3",
		"--kubelet-arg", "container-log-monitor-interval=3s")
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, podYAML("chatty", busybox, "Always", "", "sh", "-c",
		`i=0; while true; do i=$((i+1)); echo "line $i ................................................"; sleep 0.01; done`), "create", "-f", "-")
	waitPod(t, c, "chatty", 30*time.Second, "Running", running)
	follow := k.Start(t, c, "logs", "-f", "chatty")
	logs := filepath.Join(c.DataDir, "agent", "logs", "*chatty*", "main", "0.log")
	framework.Eventually(t, 40*time.Second, "two rotations, one compressed", func() bool {
		gz, _ := filepath.Glob(logs + ".*.gz")
		return len(gz) >= 1
	})
	time.Sleep(4 * time.Second) // one more rotation, so excess files are removed
	rotated, _ := filepath.Glob(logs + ".*")
	if len(rotated) != 2 {
		t.Fatalf("want container-log-max-files=3 (the current log and two rotated), got rotated %v", rotated)
	}
	if tail := k.Must(t, c, "logs", "chatty", "--tail", "1"); !strings.HasPrefix(tail, "line ") {
		t.Fatalf("logs --tail 1 after rotation: %q", tail)
	}
	k.Must(t, c, "delete", "pod", "chatty", "--grace-period=0", "--force")
	res := follow.Stop()
	out := res.Stdout
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i] // a line cut off when the stream ended
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 100 {
		t.Fatalf("followed only %d lines: %s", len(lines), res.Stderr)
	}
	re := regexp.MustCompile(`^line (\d+) \.+$`)
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("followed line %d: %q", i, l)
		}
		if n, _ := strconv.Atoi(m[1]); n != i+1 {
			t.Fatalf("followed line %d is %q: lines lost or repeated across rotation", i+1, l)
		}
	}
}

// TestImageGarbageCollection restarts the node with an image GC threshold
// below the disk's usage: an unused image is deleted, the image a running
// pod uses is kept, and the node reports it could not free enough.
func TestImageGarbageCollection(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[0]
	k.MustIn(t, c, podYAML("keeper", busybox, "Always", "", "sh", "-c", "while true; do sleep 1; done"), "create", "-f", "-")
	waitPod(t, c, "keeper", 30*time.Second, "Running", running)
	img := framework.BuildImage(t, []string{"/app"}, framework.ImageFile{Path: "app", Data: []byte("unused"), Mode: 0o755})
	tarPath := filepath.Join(t.TempDir(), "unused.tar")
	framework.SaveImage(t, img, "registry.local/e2e/unused:v1", tarPath)
	skiff(t, "images", "import", "--data-dir", c.DataDir, tarPath)

	c.Kill() // the pod keeps running
	c.Args = append(c.Args, "--kubelet-arg", "image-gc-high-threshold=1", "--kubelet-arg", "image-gc-low-threshold=0",
		"--kubelet-arg", "minimum-image-ttl-duration=0s")
	c.Restart()
	framework.Eventually(t, 30*time.Second, "the unused image collected", func() bool {
		out, err := exec.Command(framework.Binary(t), "images", "ls", "--data-dir", c.DataDir).CombinedOutput()
		return err == nil && !strings.Contains(string(out), "e2e/unused")
	})
	if out := skiff(t, "images", "ls", "--data-dir", c.DataDir); !strings.Contains(out, "registry.local/busybox") {
		t.Fatalf("the image in use was collected:\n%s", out)
	}
	framework.Eventually(t, 20*time.Second, "ImageGCFailed event on the node", func() bool {
		return strings.Contains(k.Run(c, "", nil, "describe", "node", framework.NodeName).Stdout, "ImageGCFailed")
	})
	waitPod(t, c, "keeper", 5*time.Second, "still Running", running)
}
