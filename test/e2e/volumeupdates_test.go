package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestVolumesFollowTheirSources: a running pod's configMap and projected
// secret volumes follow their sources as on upstream (the conformance
// specs "[sig-storage] ConfigMap / Projected configMap / Projected secret
// optional updates should be reflected in volume"): an optional configMap
// created after the pod started appears, its update shows, its deletion
// removes the file; a subPath mount of a key keeps the content it started
// with. Upstream allows minutes (sync period plus cache TTL); skiff
// watches the sources, so this waits seconds.
func TestVolumesFollowTheirSources(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	cms := c.Client().CoreV1().ConfigMaps("default")
	fixed := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fixed"}, Data: map[string]string{"data": "start"}}
	if _, err := cms.Create(ctx, fixed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	extra := `    volumeMounts:
    - {name: later, mountPath: /etc/later}
    - {name: projected, mountPath: /etc/projected}
    - {name: fixed, mountPath: /etc/fixed-data, subPath: data}
  volumes:
  - name: later
    configMap: {name: later, optional: true}
  - name: projected
    projected:
      sources:
      - secret: {name: later-secret, optional: true}
  - name: fixed
    configMap: {name: fixed}
`
	k.MustIn(t, c, podYAML("volupdates", busybox, "Never", extra, "sleep", "3600"), "create", "-f", "-")
	waitPod(t, c, "volupdates", 60*time.Second, "running", running)

	// cat prints the file's content, or "absent".
	cat := func(path string) string {
		r := k.Run(c, "", nil, "exec", "volupdates", "--", "sh", "-c", "cat "+path+" 2>/dev/null || echo absent")
		if r.Err != nil {
			t.Logf("exec: %v: %s", r.Err, r.Stderr)
			return "exec failed"
		}
		return r.Stdout
	}
	expect := func(path, want string) {
		t.Helper()
		var got string
		framework.Eventually(t, 30*time.Second, path+" reads "+want, func() bool {
			got = cat(path)
			return got == want
		})
	}

	expect("/etc/later/data-1", "absent\n")
	expect("/etc/projected/token", "absent\n")
	start := time.Now()
	later := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Data: map[string]string{"data-1": "value-1"}}
	if _, err := cms.Create(ctx, later, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later-secret"}, Data: map[string][]byte{"token": []byte("s3cret")}}
	if _, err := c.Client().CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("/etc/later/data-1", "value-1")
	expect("/etc/projected/token", "s3cret")
	t.Logf("created sources showed in %v", time.Since(start))

	later.Data = map[string]string{"data-1": "value-2"}
	if _, err := cms.Update(ctx, later, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	fixed.Data["data"] = "changed"
	if _, err := cms.Update(ctx, fixed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("/etc/later/data-1", "value-2")
	// Readers see the atomic writer's layout, as on upstream.
	if out := cat("/etc/later/..data/data-1"); out != "value-2" {
		t.Errorf("..data/data-1 reads %q, want value-2", out)
	}
	// A subPath mount is not updated (upstream documents the same).
	if out := cat("/etc/fixed-data"); out != "start" {
		t.Errorf("subPath mount reads %q after its source changed, want the original start", out)
	}

	if err := cms.Delete(ctx, "later", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("/etc/later/data-1", "absent\n")
	if err := c.Client().CoreV1().Secrets("default").Delete(ctx, "later-secret", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("/etc/projected/token", "absent\n")
}
