package kubelet

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cri-client/pkg/logs"
)

// How much of a failed container's log becomes its termination message
// under FallbackToLogsOnError, as upstream's kubelet bounds it.
const (
	fallbackLogLines = 80
	fallbackLogBytes = 2048
)

// fallbackToLogs reports whether a finished container's message comes from
// its log: it failed, its policy says so, and its message file was empty.
func fallbackToLogs(c *corev1.Container, exitCode int32, fileMessage string) bool {
	return c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && exitCode != 0 && fileMessage == ""
}

// logTail is the last fallbackLogLines lines of the CRI log at path, cut to
// its last fallbackLogBytes bytes.
func (k *Kubelet) logTail(ctx context.Context, path string) string {
	lines := int64(fallbackLogLines)
	buf := &tailBuffer{max: fallbackLogBytes}
	if err := logs.ReadLogs(ctx, path, "", &logs.LogOptions{TailLines: &lines}, k.cfg.Runtime, buf, buf); err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	return string(buf.b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.b = append(t.b[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if drop := len(t.b) + len(p) - t.max; drop > 0 {
		t.b = append(t.b[:0], t.b[drop:]...)
	}
	t.b = append(t.b, p...)
	return n, nil
}
