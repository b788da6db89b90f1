package bundle

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestInstallWritesOnceAndReplacesOldVersions(t *testing.T) {
	dir := t.TempDir()
	binaries["tool"] = gz(t, "v1")
	defer delete(binaries, "tool")
	p1, err := Install(dir, "tool")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p1); string(b) != "v1" {
		t.Fatalf("installed %q", b)
	}
	if fi, _ := os.Stat(p1); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if again, err := Install(dir, "tool"); err != nil || again != p1 {
		t.Fatalf("second install: %s %v", again, err)
	}
	binaries["tool"] = gz(t, "v2")
	p2, err := Install(dir, "tool")
	if err != nil || p2 == p1 {
		t.Fatalf("new version: %s %v", p2, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*tool*")); len(left) != 1 || left[0] != p2 {
		t.Fatalf("files: %v", left)
	}
	if _, err := Install(dir, "missing"); err == nil || Has("missing") {
		t.Fatal("installed a binary the build does not carry")
	}
}
