package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// nfsHelpers lists the running `nfs-fuse` helpers whose mount lies
// under dir.
func nfsHelpers(dir string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "nfs-fuse") && strings.Contains(cmd, dir) {
			found = append(found, filepath.Base(filepath.Dir(p))+": "+cmd)
		}
	}
	return found
}

// TestNFSVolume: pods mount an export of an NFS server on loopback,
// inline and through a PV and claim; what they write is on the server,
// a readOnly mount refuses writes, the mount outlives a SIGKILL of skiff,
// and deleting the pods unmounts the export and ends its helper.
func TestNFSVolume(t *testing.T) {
	export := t.TempDir()
	if err := os.Chmod(export, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(export, "motd"), []byte("served over nfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	framework.StartNFSServer(t, export)
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]

	inline := `    volumeMounts:
    - {name: nfs, mountPath: /nfs}
  volumes:
  - name: nfs
    nfs: {server: 127.0.0.1, path: /}
`
	k.MustIn(t, c, podYAML("writer", busybox, "Never", inline, "sh", "-c", "cat /nfs/motd && echo written by a pod > /nfs/hello && mkdir /nfs/dir && ls /nfs"), "create", "-f", "-")
	waitPod(t, c, "writer", 60*time.Second, "Succeeded", succeeded)
	if out := k.Must(t, c, "logs", "writer"); out != "served over nfs\ndir\nhello\nmotd\n" {
		t.Fatalf("writer saw %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(export, "hello")); err != nil || string(b) != "written by a pod\n" {
		t.Fatalf("server's copy of hello: %q, %v", b, err)
	}

	k.MustIn(t, c, `apiVersion: v1
kind: PersistentVolume
metadata:
  name: nfs
spec:
  storageClassName: nfs
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  nfs: {server: 127.0.0.1, path: /}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: shared
spec:
  storageClassName: nfs
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
`, "create", "-f", "-")
	if pvc := waitClaim(t, c, "shared", corev1.ClaimBound); pvc.Spec.VolumeName != "nfs" {
		t.Fatalf("claim bound to %q", pvc.Spec.VolumeName)
	}
	k.MustIn(t, c, claimPodYAML("app", "shared", true, "while true; do date >> /data/log; sleep 1; done"), "create", "-f", "-")
	readOnly := `    volumeMounts:
    - {name: data, mountPath: /data, readOnly: true}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: shared}
`
	k.MustIn(t, c, podYAML("reader", busybox, "Never", readOnly, "sh", "-c", "cat /data/hello; if echo x > /data/nope; then echo wrote; else echo refused; fi"), "create", "-f", "-")
	waitPod(t, c, "reader", 60*time.Second, "Succeeded", succeeded)
	if out := k.Must(t, c, "logs", "reader"); !strings.HasPrefix(out, "written by a pod\n") || !strings.Contains(out, "refused\n") || !strings.Contains(out, "Read-only file system") {
		t.Fatalf("read-only pod: %q", out)
	}
	if _, err := os.Stat(filepath.Join(export, "nope")); err == nil {
		t.Fatal("a readOnly mount wrote to the server")
	}
	waitPod(t, c, "app", 60*time.Second, "Running", running)

	size := func() int64 {
		st, err := os.Stat(filepath.Join(export, "log"))
		if err != nil {
			return 0
		}
		return st.Size()
	}
	framework.Eventually(t, 20*time.Second, "the pod writes to the export", func() bool { return size() > 0 })
	c.Kill()
	c.Restart()
	before := size()
	framework.Eventually(t, 30*time.Second, "the pod still writes to the export after skiff was killed", func() bool { return size() > before })

	k.Must(t, c, "delete", "pod", "app", "reader", "writer")
	agent := filepath.Join(c.DataDir, "agent")
	framework.Eventually(t, 30*time.Second, "NFS unmounted and its helpers gone", func() bool {
		for _, m := range mountedUnder(agent) {
			if strings.Contains(m, "nfs") {
				return false
			}
		}
		return len(nfsHelpers(c.DataDir)) == 0
	})
	if h := nfsHelpers(c.DataDir); len(h) > 0 {
		t.Fatal(fmt.Sprint("helpers left: ", h))
	}
}
