package logrotate

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func setup(t *testing.T) (*Rotator, *critest.FakeRuntimeService, *clocktesting.FakeClock, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "main", "0.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	rt := critest.NewFakeRuntimeService()
	rt.SetFakeContainers([]*critest.FakeContainer{{ContainerStatus: runtimeapi.ContainerStatus{
		Id: "c1", State: runtimeapi.ContainerState_CONTAINER_RUNNING, LogPath: path,
	}}})
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	return New(Policy{MaxSize: 1024, MaxFiles: 3}, rt, clk, nil), rt, clk, path
}

func write(t *testing.T, path, s string, n int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Repeat(s, n)), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestSmallLogsStay(t *testing.T) {
	r, rt, _, path := setup(t)
	write(t, path, "x", 100)
	if err := r.RotateAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Fatalf("rotated a small log: %v", m)
	}
	for _, c := range rt.Called {
		if c == "ReopenContainerLog" {
			t.Fatal("reopened a small log")
		}
	}
}

func TestRotatesCompressesAndKeepsMaxFiles(t *testing.T) {
	r, _, clk, path := setup(t)
	ctx := context.Background()
	for i, s := range []string{"a", "b", "c", "d"} {
		write(t, path, s, 2000)
		if err := r.RotateAll(ctx); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("rotation %d: the current log was not moved away", i)
		}
		clk.Step(time.Second)
	}
	// MaxFiles 3: the current log (gone here, the fake runtime writes
	// nothing) plus two rotated: "c" compressed and "d" plain.
	m, _ := filepath.Glob(path + ".*")
	if len(m) != 2 {
		t.Fatalf("rotated files: %v", m)
	}
	if !strings.HasSuffix(m[0], "20261130-120002.gz") || !strings.HasSuffix(m[1], "20261130-120003") {
		t.Fatalf("rotated files: %v", m)
	}
	f, err := os.Open(m[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	if string(b) != strings.Repeat("c", 2000) {
		t.Fatalf("compressed content %q...", b[:10])
	}
	if b, _ := os.ReadFile(m[1]); string(b) != strings.Repeat("d", 2000) {
		t.Fatalf("newest rotated content %q...", b[:10])
	}
}

func TestFailedReopenPutsTheLogBack(t *testing.T) {
	r, rt, _, path := setup(t)
	write(t, path, "x", 2000)
	rt.InjectError("ReopenContainerLog", errors.New("not running"))
	if err := r.RotateAll(context.Background()); err == nil {
		t.Fatal("want the reopen error")
	}
	if b, err := os.ReadFile(path); err != nil || len(b) != 2000 {
		t.Fatalf("log not restored: %v", err)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Fatalf("rotated files left: %v", m)
	}
}

func TestLeftoversOfInterruptedCompressionAreRemoved(t *testing.T) {
	r, _, _, path := setup(t)
	write(t, path+".20261130-110000", "o", 10)
	write(t, path+".20261130-110000.gz", "z", 10)
	write(t, path+".20261130-110001.gz.tmp", "t", 10)
	rotated, err := r.cleanup(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 1 || !strings.HasSuffix(rotated[0], "110000.gz") {
		t.Fatalf("rotated: %v", rotated)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 1 {
		t.Fatalf("files left: %v", m)
	}
}
