package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/test/e2e/framework"
)

func skiff(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(framework.Binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestImagesCLIAndDropDir imports, lists and removes images with the CLI,
// and checks the agent imports tarballs dropped into <data-dir>/agent/images.
func TestImagesCLIAndDropDir(t *testing.T) {
	img := framework.BuildImage(t, []string{"/app"}, framework.ImageFile{Path: "app", Data: []byte("#!/bin/sh\n"), Mode: 0o755})
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "app.tar")
	framework.SaveImage(t, img, "registry.local/e2e/app:v1", tarPath)

	data := filepath.Join(dir, "data")
	out := skiff(t, "images", "import", "--data-dir", data, tarPath)
	if !strings.Contains(out, "registry.local/e2e/app:v1") {
		t.Fatalf("import: %s", out)
	}
	out = skiff(t, "images", "ls", "--data-dir", data)
	if !regexp.MustCompile(`registry.local/e2e/app\s+v1\s+[0-9a-f]{13}`).MatchString(out) {
		t.Fatalf("ls:\n%s", out)
	}
	skiff(t, "images", "rm", "--data-dir", data, "registry.local/e2e/app:v1")
	if out := skiff(t, "images", "ls", "--data-dir", data); strings.Contains(out, "e2e/app") {
		t.Fatalf("after rm:\n%s", out)
	}

	// Listing is read-only: a data dir without a store gets an error
	// naming the store, and nothing is created.
	none := filepath.Join(dir, "none")
	if out, err := exec.Command(framework.Binary(t), "images", "ls", "--data-dir", none).CombinedOutput(); err == nil || !strings.Contains(string(out), "no image store at "+none) {
		t.Fatalf("ls of a missing store: %v\n%s", err, out)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Fatalf("ls created %s: %v", none, err)
	}

	// Drop-in directory, imported when the node agent starts.
	clusterData := filepath.Join(t.TempDir(), "data")
	drop := filepath.Join(clusterData, "agent", "images")
	if err := os.MkdirAll(drop, 0o700); err != nil {
		t.Fatal(err)
	}
	framework.SaveImage(t, img, "registry.local/e2e/dropped:v2", filepath.Join(drop, "dropped.tar"))
	framework.StartCluster(t, framework.Options{Agent: true, DataDir: clusterData})
	framework.Eventually(t, 10*time.Second, "dropped tarball imported", func() bool {
		out, err := exec.Command(framework.Binary(t), "images", "ls", "--data-dir", clusterData).CombinedOutput()
		return err == nil && strings.Contains(string(out), "registry.local/e2e/dropped")
	})
}
