package cri

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cri-client/pkg/logs"
)

// Output a container leaves without a final newline ("echo -n DONE") is
// logged as a partial entry, so readers show it without a newline, as on
// containerd.
func TestLogUnfinishedLineIsPartial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := newLogWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	out := w.Stream("stdout")
	if _, err := out.Write([]byte("line\nDONE")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), " stdout F line\n") || !strings.HasSuffix(string(raw), " stdout P DONE\n") {
		t.Fatalf("log file:\n%s", raw)
	}
	var got bytes.Buffer
	if err := logs.ReadLogs(context.Background(), path, "", &logs.LogOptions{}, nil, &got, &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != "line\nDONE" {
		t.Fatalf("read %q, want %q", got.String(), "line\nDONE")
	}
}
