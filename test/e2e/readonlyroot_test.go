package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestReadOnlyRootFilesystem: with securityContext.readOnlyRootFilesystem
// a container cannot write to its root filesystem but can to its
// volumes (the conformance spec "should not write to root filesystem"
// checks the same with busybox ash's wording).
func TestReadOnlyRootFilesystem(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	extra := `    securityContext:
      readOnlyRootFilesystem: true
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
  volumes:
  - name: scratch
    emptyDir: {}
`
	k.MustIn(t, c, podYAML("readonly", busybox, "Never", extra, "sh", "-c",
		`echo test > /file 2>&1 || echo "root: denied"; echo test > /scratch/file && echo "volume: written"`), "create", "-f", "-")
	p := waitPod(t, c, "readonly", 60*time.Second, "finished", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	out := k.Must(t, c, "logs", "readonly")
	if p.Status.Phase != corev1.PodSucceeded || !strings.Contains(out, "Read-only file system") ||
		!strings.Contains(out, "root: denied") || !strings.Contains(out, "volume: written") {
		t.Fatalf("phase %s, logs:\n%s", p.Status.Phase, out)
	}
}
