package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeCRILog writes lines as a CRI log file and returns its path.
func writeCRILog(t *testing.T, lines []string) string {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "2026-12-07T05:00:00.000000000Z stdout F %s\n", l)
	}
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// FallbackToLogsOnError: a failed container with an empty message file
// reports its log's last 80 lines, at most 2048 bytes; one that succeeded,
// or whose policy is File, does not.
func TestTerminationMessageFallbackToLogs(t *testing.T) {
	k := New(Config{NodeName: "node", RootDir: t.TempDir()})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid"}}
	exited := func(path string, code int32) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
			State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: code, LogPath: path}
	}
	message := func(policy corev1.TerminationMessagePolicy, s *runtimeapi.ContainerStatus) string {
		c := &corev1.Container{Name: "main", TerminationMessagePolicy: policy, TerminationMessagePath: "/dev/termination-log"}
		return k.state(pod, c, s).Terminated.Message
	}
	short := writeCRILog(t, []string{"DONE"})
	if got := message(corev1.TerminationMessageFallbackToLogsOnError, exited(short, 1)); got != "DONE\n" {
		t.Fatalf("message %q, want %q", got, "DONE\n")
	}
	if got := message(corev1.TerminationMessageFallbackToLogsOnError, exited(short, 0)); got != "" {
		t.Fatalf("succeeded container: message %q, want none", got)
	}
	if got := message(corev1.TerminationMessageReadFile, exited(short, 1)); got != "" {
		t.Fatalf("File policy: message %q, want none", got)
	}

	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("line-%03d", i))
	}
	got := message(corev1.TerminationMessageFallbackToLogsOnError, exited(writeCRILog(t, many), 2))
	if want := strings.Join(many[20:], "\n") + "\n"; got != want {
		t.Fatalf("100 lines: message %q, want the last 80 lines", got)
	}
	long := strings.Repeat("x", 3000)
	got = message(corev1.TerminationMessageFallbackToLogsOnError, exited(writeCRILog(t, []string{"first", long + "END"}), 2))
	if len(got) != fallbackLogBytes || !strings.HasSuffix(got, "END\n") {
		t.Fatalf("long log: message of %d bytes ending %q, want the last %d bytes", len(got), got[max(0, len(got)-8):], fallbackLogBytes)
	}

	// A message file with content wins over the log.
	dir := filepath.Join(k.podDir(pod.UID), "containers", "main")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0-termination-log"), []byte("from file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := message(corev1.TerminationMessageFallbackToLogsOnError, exited(short, 1)); got != "from file" {
		t.Fatalf("message %q, want the file's", got)
	}
}
