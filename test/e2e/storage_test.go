package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// pvYAML is a static hostPath PersistentVolume of class "manual".
func pvYAML(name, path, reclaim string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: %s
spec:
  storageClassName: manual
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: %s
  hostPath: {path: %s, type: DirectoryOrCreate}
`, name, reclaim, path)
}

// pvcYAML is a claim for 100Mi; class "" leaves storageClassName unset
// (the default class applies).
func pvcYAML(name, class string) string {
	cls := ""
	if class != "" {
		cls = "  storageClassName: " + class + "\n"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: %s
spec:
%s  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 100Mi}}
`, name, cls)
}

// claimPodYAML is a busybox pod mounting claim at /data, running cmd;
// scheduled by the scheduler (no nodeName) unless onNode.
func claimPodYAML(name, claim string, onNode bool, cmd string) string {
	node := ""
	if onNode {
		node = "  nodeName: " + framework.NodeName + "\n"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
%s  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", %q]
    volumeMounts:
    - {name: data, mountPath: /data}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: %s}
`, name, node, busybox, cmd, claim)
}

func claimPhase(t testing.TB, c *framework.Cluster, name string) (*corev1.PersistentVolumeClaim, error) {
	return c.Client().CoreV1().PersistentVolumeClaims("default").Get(context.Background(), name, metav1.GetOptions{})
}

func waitClaim(t testing.TB, c *framework.Cluster, name string, phase corev1.PersistentVolumeClaimPhase) *corev1.PersistentVolumeClaim {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	framework.Eventually(t, 60*time.Second, "claim "+name+" "+string(phase), func() bool {
		var err error
		pvc, err = claimPhase(t, c, name)
		return err == nil && pvc.Status.Phase == phase
	})
	return pvc
}

func waitPV(t testing.TB, c *framework.Cluster, name string, what string, ok func(*corev1.PersistentVolume, error) bool) {
	t.Helper()
	framework.Eventually(t, 60*time.Second, "pv "+name+" "+what, func() bool {
		pv, err := c.Client().CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
		return ok(pv, err)
	})
}

func succeeded(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded }

// mountedUnder reports whether any mount point lies under dir.
func mountedUnder(dir string) []string {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var found []string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			found = append(found, f[4])
		}
	}
	return found
}

// TestPersistentVolumesAndClaims: a static PV binds to a claim of its
// class, a pod writes through the claim into the PV's directory and a
// second pod reads it back; the claim is protected while a pod uses it;
// deleting it releases the Retain volume, whose data stays. Bad input
// gets Kubernetes' errors.
func TestPersistentVolumesAndClaims(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "pv-data")

	k.MustIn(t, c, pvYAML("pv-manual", dir, "Retain"), "create", "-f", "-")
	waitPV(t, c, "pv-manual", "Available", func(pv *corev1.PersistentVolume, err error) bool {
		return err == nil && pv.Status.Phase == corev1.VolumeAvailable
	})
	k.MustIn(t, c, pvcYAML("claim", "manual"), "create", "-f", "-")
	pvc := waitClaim(t, c, "claim", corev1.ClaimBound)
	if pvc.Spec.VolumeName != "pv-manual" || pvc.Status.Capacity.Storage().String() != "1Gi" {
		t.Fatalf("claim bound to %q with capacity %v", pvc.Spec.VolumeName, pvc.Status.Capacity)
	}
	waitPV(t, c, "pv-manual", "Bound to the claim", func(pv *corev1.PersistentVolume, err error) bool {
		return err == nil && pv.Status.Phase == corev1.VolumeBound && pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.UID == pvc.UID
	})
	if out := k.Must(t, c, "get", "pvc", "claim"); !strings.Contains(out, "Bound") || !strings.Contains(out, "pv-manual") {
		t.Fatalf("kubectl get pvc:\n%s", out)
	}

	// A writer on the node, then a reader.
	k.MustIn(t, c, claimPodYAML("writer", "claim", true, "echo persisted > /data/file && sync"), "create", "-f", "-")
	waitPod(t, c, "writer", 60*time.Second, "Succeeded", succeeded)
	if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "persisted\n" {
		t.Fatalf("the PV's directory holds %q (%v)", b, err)
	}
	k.Must(t, c, "delete", "pod", "writer")
	k.MustIn(t, c, claimPodYAML("reader", "claim", false, "cat /data/file; sleep 3600"), "create", "-f", "-")
	waitPod(t, c, "reader", 60*time.Second, "Running", running)
	framework.Eventually(t, 10*time.Second, "reader's log", func() bool {
		return k.Run(c, "", nil, "logs", "reader").Stdout == "persisted\n"
	})

	// The claim outlives its deletion while a pod uses it.
	k.Must(t, c, "delete", "pvc", "claim", "--wait=false")
	time.Sleep(2 * time.Second)
	pvc, err := claimPhase(t, c, "claim")
	if err != nil || pvc.DeletionTimestamp == nil || !containsString(pvc.Finalizers, "kubernetes.io/pvc-protection") {
		t.Fatalf("claim in use was not protected: %v %+v", err, pvc)
	}
	k.Must(t, c, "delete", "pod", "reader")
	framework.Eventually(t, 30*time.Second, "claim gone once unused", func() bool {
		_, err := claimPhase(t, c, "claim")
		return apierrors.IsNotFound(err)
	})
	if m := mountedUnder(dir); len(m) > 0 {
		t.Fatalf("mounts of the volume left: %v", m)
	}
	waitPV(t, c, "pv-manual", "Released", func(pv *corev1.PersistentVolume, err error) bool {
		return err == nil && pv.Status.Phase == corev1.VolumeReleased
	})
	if _, err := os.Stat(filepath.Join(dir, "file")); err != nil {
		t.Fatalf("Retain lost the data: %v", err)
	}

	// Claims nothing satisfies stay Pending and say why, in upstream's
	// words: one of a class that does not exist, one of no class.
	k.MustIn(t, c, pvcYAML("nothing", "manual"), "create", "-f", "-")
	k.MustIn(t, c, pvcYAML("classless", `""`), "create", "-f", "-")
	for claim, want := range map[string][2]string{
		"nothing":   {"ProvisioningFailed", `persistentvolume-controller  storageclass.storage.k8s.io "manual" not found`},
		"classless": {"FailedBinding", "persistentvolume-controller  no persistent volumes available for this claim and no storage class is set"},
	} {
		framework.Eventually(t, 20*time.Second, claim+"'s "+want[0]+" event", func() bool {
			out := k.Run(c, "", nil, "describe", "pvc", claim).Stdout
			return strings.Contains(out, want[0]) && strings.Contains(out, want[1])
		})
		if pvc, _ := claimPhase(t, c, claim); pvc.Status.Phase != corev1.ClaimPending {
			t.Fatalf("claim %s without a volume is %s", claim, pvc.Status.Phase)
		}
	}

	// Bad input: invalid PV, claim without a size, shrinking a claim.
	r := k.Run(c, `apiVersion: v1
kind: PersistentVolume
metadata: {name: bad}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
`, nil, "create", "-f", "-")
	if r.Err == nil || !strings.Contains(r.Stderr, "is invalid") || !strings.Contains(r.Stderr, "spec") {
		t.Fatalf("PV without a source: %v %s", r.Err, r.Stderr)
	}
	_, err = c.Client().CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "nosize"},
		Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
	}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.resources[storage]") {
		t.Fatalf("claim without a size: %v", err)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDynamicProvisioning: a claim with no class gets the default
// local-path class and waits for its first consumer: a Deployment's pod
// with a nodeSelector, which the scheduler places on that node (of two);
// the volume is provisioned there with that node's affinity; the pod's
// data outlives the pod and the replacement reads it; deleting the claim
// deletes the volume and its directory.
func TestDynamicProvisioning(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()

	if out := k.Must(t, c, "get", "storageclass"); !strings.Contains(out, "local-path (default)") || !strings.Contains(out, "WaitForFirstConsumer") {
		t.Fatalf("kubectl get storageclass:\n%s", out)
	}
	// A second node, so the selector matters.
	if err := framework.CreateNode(ctx, c.Client(), framework.SimulatedNode("elsewhere", nil, "64", "256Gi", 110)); err != nil {
		t.Fatal(err)
	}
	framework.KeepNodesAlive(t, c.Client(), "elsewhere")
	k.MustIn(t, c, pvcYAML("data", ""), "create", "-f", "-")
	time.Sleep(time.Second)
	pvc, err := claimPhase(t, c, "data")
	if err != nil || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "local-path" || pvc.Status.Phase != corev1.ClaimPending {
		t.Fatalf("claim without a class: %v %+v", err, pvc)
	}
	framework.Eventually(t, 20*time.Second, "WaitForFirstConsumer event", func() bool {
		return strings.Contains(k.Run(c, "", nil, "describe", "pvc", "data").Stdout, "WaitForFirstConsumer")
	})

	start := time.Now()
	k.MustIn(t, c, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %s}
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "[ -f /data/f ] || echo one > /data/f; cat /data/f; sleep 3600"]
        volumeMounts:
        - {name: data, mountPath: /data}
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: data}
`, framework.NodeName, busybox), "create", "-f", "-")
	first := waitDeploymentPod(t, c, "db", "")
	t.Logf("claim provisioned and pod running in %v", time.Since(start))
	pvc = waitClaim(t, c, "data", corev1.ClaimBound)
	pv, err := c.Client().CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != "skiff.io/local-path" || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Fatalf("provisioned PV: %+v", pv)
	}
	if pvc.Annotations["volume.kubernetes.io/selected-node"] != framework.NodeName {
		t.Fatalf("claim's selected node: %v", pvc.Annotations)
	}
	if a := pv.Spec.NodeAffinity; a == nil || a.Required == nil || !strings.Contains(a.Required.String(), framework.NodeName) {
		t.Fatalf("PV's node affinity: %+v", a)
	}
	if pv.Spec.Local == nil || !strings.HasPrefix(pv.Spec.Local.Path, c.DataDir+"/") {
		t.Fatalf("volume %+v is not a local directory in the data dir %s", pv.Spec.PersistentVolumeSource, c.DataDir)
	}
	path := pv.Spec.Local.Path
	framework.Eventually(t, 10*time.Second, "data in the node's storage", func() bool {
		b, err := os.ReadFile(filepath.Join(path, "f"))
		return err == nil && string(b) == "one\n"
	})

	// The replacement of a deleted pod reads the data.
	k.Must(t, c, "delete", "pod", first)
	second := waitDeploymentPod(t, c, "db", first)
	framework.Eventually(t, 10*time.Second, "the replacement's log", func() bool {
		return k.Run(c, "", nil, "logs", second).Stdout == "one\n"
	})

	// Deleting the Deployment and the claim deletes the volume and its
	// directory.
	k.Must(t, c, "delete", "deployment", "db")
	k.Must(t, c, "delete", "pvc", "data")
	waitPV(t, c, pv.Name, "deleted", func(_ *corev1.PersistentVolume, err error) bool { return apierrors.IsNotFound(err) })
	framework.Eventually(t, 10*time.Second, "directory removed", func() bool {
		_, err := os.Stat(path)
		return os.IsNotExist(err)
	})
	if m := mountedUnder(path); len(m) > 0 {
		t.Fatalf("mounts left: %v", m)
	}

	// Expansion is refused: local-path does not allow it.
	k.MustIn(t, c, pvcYAML("small", ""), "create", "-f", "-")
	r := k.Run(c, "", nil, "patch", "pvc", "small", "-p", `{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}`)
	if r.Err == nil || !strings.Contains(r.Stderr, "Forbidden") {
		t.Fatalf("expanding a local-path claim: %v %s", r.Err, r.Stderr)
	}
}

// waitDeploymentPod waits for a Running pod labelled app=name other than
// not, and returns its name.
func waitDeploymentPod(t testing.TB, c *framework.Cluster, app, not string) string {
	t.Helper()
	var name string
	framework.Eventually(t, 60*time.Second, app+"'s pod Running", func() bool {
		pods, err := c.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			if p.Name != not && p.DeletionTimestamp == nil && running(&p) {
				if p.Spec.NodeName != framework.NodeName {
					t.Fatalf("pod %s landed on %s despite its nodeSelector", p.Name, p.Spec.NodeName)
				}
				name = p.Name
				return true
			}
		}
		return false
	})
	return name
}

// TestPersistentVolumeSurvivesKill: killing skiff (server and its node
// agent) with SIGKILL loses neither the binding nor the pod's mount; the
// restarted node still tears the volume down cleanly.
func TestPersistentVolumeSurvivesKill(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, pvcYAML("data", ""), "create", "-f", "-")
	k.MustIn(t, c, claimPodYAML("app", "data", false, "while true; do date >> /data/log; sleep 1; done"), "create", "-f", "-")
	waitPod(t, c, "app", 60*time.Second, "Running", running)
	pvc := waitClaim(t, c, "data", corev1.ClaimBound)
	pv, err := c.Client().CoreV1().PersistentVolumes().Get(context.Background(), pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := pv.Spec.Local.Path

	c.Kill()
	c.Restart()
	waitClaim(t, c, "data", corev1.ClaimBound)
	size := func() int64 {
		st, err := os.Stat(filepath.Join(path, "log"))
		if err != nil {
			return 0
		}
		return st.Size()
	}
	before := size()
	framework.Eventually(t, 30*time.Second, "the pod still writes to its volume", func() bool { return size() > before })
	k.Must(t, c, "delete", "pod", "app")
	podDir := filepath.Join(c.DataDir, "agent")
	framework.Eventually(t, 20*time.Second, "volume unmounted", func() bool {
		for _, m := range mountedUnder(podDir) {
			if strings.Contains(m, "volumes") {
				return false
			}
		}
		return true
	})
}

// TestGitRepoVolume: a gitRepo volume holds a clone of the repository a
// git daemon serves on loopback, at the revision asked for; a repository
// that cannot be cloned is a FailedMount event and the pod waits.
func TestGitRepoVolume(t *testing.T) {
	base := t.TempDir()
	repo := filepath.Join(base, "repo")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=e2e", "-c", "user.email=e2e@skiff"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(repo, "index.html"), []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", ".")
	git("commit", "-q", "-m", "first")
	first := git("rev-parse", "HEAD")
	if err := os.WriteFile(filepath.Join(repo, "index.html"), []byte("second\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-am", "second")
	port := framework.FreePort(t)
	daemon := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), "--base-path="+base, base)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	url := fmt.Sprintf("git://127.0.0.1:%d/repo", port)
	framework.Eventually(t, 10*time.Second, "git daemon serving", func() bool {
		return exec.Command("git", "ls-remote", url).Run() == nil
	})

	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	extra := fmt.Sprintf(`    volumeMounts:
    - {name: html, mountPath: /html}
    - {name: pinned, mountPath: /pinned}
  volumes:
  - name: html
    gitRepo: {repository: %q, directory: "."}
  - name: pinned
    gitRepo: {repository: %q, revision: %q}
`, url, url, first)
	k.MustIn(t, c, podYAML("gitrepo", busybox, "Never", extra, "sh", "-c", "cat /html/index.html /pinned/repo/index.html"), "create", "-f", "-")
	waitPod(t, c, "gitrepo", 60*time.Second, "Succeeded", succeeded)
	if out := k.Must(t, c, "logs", "gitrepo"); out != "second\nfirst\n" {
		t.Fatalf("gitRepo contents: %q", out)
	}

	missing := fmt.Sprintf(`    volumeMounts:
    - {name: html, mountPath: /html}
  volumes:
  - name: html
    gitRepo: {repository: "git://127.0.0.1:%d/missing"}
`, port)
	k.MustIn(t, c, podYAML("nogit", busybox, "Never", missing, "true"), "create", "-f", "-")
	framework.Eventually(t, 30*time.Second, "FailedMount event", func() bool {
		return strings.Contains(k.Run(c, "", nil, "describe", "pod", "nogit").Stdout, "FailedMount")
	})
	if p, _ := c.Client().CoreV1().Pods("default").Get(context.Background(), "nogit", metav1.GetOptions{}); p.Status.Phase != corev1.PodPending {
		t.Fatalf("pod with an unclonable gitRepo is %s", p.Status.Phase)
	}
}
