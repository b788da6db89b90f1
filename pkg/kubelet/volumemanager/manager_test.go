package volumemanager

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff/skiff/pkg/volume"
)

// fakePlugin serves PVs and inline nfs volumes and counts its calls.
type fakePlugin struct {
	mu        sync.Mutex
	calls     map[string]int
	readOnly  map[string]bool // by target
	ownership bool
}

func newFake() *fakePlugin {
	return &fakePlugin{calls: map[string]int{}, readOnly: map[string]bool{}}
}

func (f *fakePlugin) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakePlugin) note(op string) {
	f.mu.Lock()
	f.calls[op]++
	f.mu.Unlock()
}

func (*fakePlugin) Name() string { return "example.com/fake" }
func (*fakePlugin) CanSupport(s *volume.Spec) bool {
	return s.PV != nil || (s.Inline != nil && s.Inline.NFS != nil)
}
func (f *fakePlugin) SupportsOwnership(*volume.Spec) bool { return f.ownership }
func (f *fakePlugin) NodeStage(_ context.Context, r *volume.StageRequest) error {
	if _, err := os.Stat(r.StagingPath); err != nil {
		return err
	}
	f.note("stage")
	return nil
}
func (f *fakePlugin) NodeUnstage(context.Context, string, string) error {
	f.note("unstage")
	return nil
}
func (f *fakePlugin) NodePublish(_ context.Context, r *volume.PublishRequest) error {
	f.note("publish")
	f.mu.Lock()
	f.readOnly[r.TargetPath] = r.ReadOnly
	f.mu.Unlock()
	if err := os.MkdirAll(r.TargetPath, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.TargetPath, "data"), []byte(r.VolumeID), 0o644)
}
func (f *fakePlugin) NodeUnpublish(_ context.Context, _, target string) error {
	f.note("unpublish")
	return os.RemoveAll(target)
}

type env struct {
	t      *testing.T
	root   string
	client *fake.Clientset
	plugin *fakePlugin
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, root: t.TempDir(), client: fake.NewClientset(), plugin: newFake()}
	return e
}

// manager returns a Manager on e's root, as a (re)started kubelet makes.
func (e *env) manager(boot string) *Manager {
	return New(Config{RootDir: e.root, Client: e.client, Plugins: []volume.Plugin{e.plugin}, BootID: boot})
}

func (e *env) boundClaim(name, pv string, modes ...corev1.PersistentVolumeAccessMode) {
	ctx := context.Background()
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("claim-" + name)},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: pv},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	if _, err := e.client.CoreV1().PersistentVolumeClaims("ns").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	vol := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pv},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes: modes,
			ClaimRef:    &corev1.ObjectReference{Namespace: "ns", Name: name, UID: claim.UID},
		},
	}
	if _, err := e.client.CoreV1().PersistentVolumes().Create(ctx, vol, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func claimPod(uid, claim string, readOnly bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-" + uid, Namespace: "ns", UID: types.UID(uid)},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}}}},
	}
}

func (e *env) target(pod *corev1.Pod) string {
	return filepath.Join(e.root, "pods", string(pod.UID), "volumes", pod.Spec.Volumes[0].Name)
}

func (e *env) setUp(m *Manager, pod *corev1.Pod) {
	e.t.Helper()
	if err := m.SetUp(context.Background(), pod, &pod.Spec.Volumes[0], e.target(pod)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) want(stage, publish, unpublish, unstage int) {
	e.t.Helper()
	got := []int{e.plugin.count("stage"), e.plugin.count("publish"), e.plugin.count("unpublish"), e.plugin.count("unstage")}
	if got[0] != stage || got[1] != publish || got[2] != unpublish || got[3] != unstage {
		e.t.Fatalf("stage, publish, unpublish, unstage = %v; want %v", got, []int{stage, publish, unpublish, unstage})
	}
}

func TestStageIsSharedAndCountedAcrossPods(t *testing.T) {
	e := newEnv(t)
	e.boundClaim("c", "pv1")
	m := e.manager("boot1")
	ctx := context.Background()
	a, b := claimPod("a", "c", false), claimPod("b", "c", false)
	e.setUp(m, a)
	e.setUp(m, b)
	e.setUp(m, a) // a resync: nothing more
	e.want(1, 2, 0, 0)
	if d, _ := os.ReadFile(filepath.Join(e.target(b), "data")); string(d) != "pv1" {
		t.Fatalf("volume ID published = %q, want the PV's name", d)
	}
	if err := m.TearDownPod(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	e.want(1, 2, 1, 0)
	if err := m.TearDownPod(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	e.want(1, 2, 2, 1)
	if _, err := os.Stat(m.stagingPath(e.plugin.Name(), "pv1")); !os.IsNotExist(err) {
		t.Errorf("staging path left behind: %v", err)
	}
	if err := m.TearDownPod(ctx, "b"); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	e.want(1, 2, 2, 1)
}

func TestRecordsSurviveARestart(t *testing.T) {
	e := newEnv(t)
	e.boundClaim("c", "pv1")
	pod := claimPod("a", "c", false)
	e.setUp(e.manager("boot1"), pod)
	e.want(1, 1, 0, 0)
	calls := len(e.client.Actions())

	// A restarted kubelet: same root, new Manager.
	m := e.manager("boot1")
	e.setUp(m, pod)
	e.want(1, 1, 0, 0)
	if n := len(e.client.Actions()) - calls; n != 0 {
		t.Errorf("a published volume cost %d API calls on resync", n)
	}
	// Even with the pod's directory gone, teardown finds what to undo.
	os.RemoveAll(filepath.Join(e.root, "pods"))
	if err := m.TearDownPod(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	e.want(1, 1, 1, 1)
}

func TestAnotherBootRedoesStageAndPublish(t *testing.T) {
	e := newEnv(t)
	e.boundClaim("c", "pv1")
	pod := claimPod("a", "c", false)
	e.setUp(e.manager("boot1"), pod)
	e.setUp(e.manager("boot2"), pod)
	e.want(2, 2, 0, 0)
}

func TestCleanOrphans(t *testing.T) {
	e := newEnv(t)
	e.boundClaim("c", "pv1")
	e.boundClaim("d", "pv2")
	m := e.manager("boot1")
	gone, kept := claimPod("gone", "c", false), claimPod("kept", "d", false)
	e.setUp(m, gone)
	e.setUp(m, kept)
	// A kubelet killed after unpublishing but before unstaging.
	leftover := staging{Plugin: e.plugin.Name(), VolumeID: "pv3", StagingPath: m.stagingPath(e.plugin.Name(), "pv3"), Staged: true}
	if err := writeRecord(m.stagingFile(leftover.Plugin, leftover.VolumeID), leftover); err != nil {
		t.Fatal(err)
	}
	m = e.manager("boot1")
	if err := m.CleanOrphans(context.Background(), func(uid types.UID) bool { return uid == "kept" }); err != nil {
		t.Fatal(err)
	}
	e.want(2, 2, 1, 2) // gone's pv1 and the leftover pv3 unstaged
	pods, _ := m.Published()
	if len(pods) != 1 || pods[0] != "kept" {
		t.Fatalf("published pods = %v, want [kept]", pods)
	}
	if _, err := os.Stat(filepath.Join(e.target(kept), "data")); err != nil {
		t.Fatalf("a live pod's volume was touched: %v", err)
	}
}

func TestClaimResolution(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.boundClaim("rw", "pv-rw", corev1.ReadWriteOnce)
	e.boundClaim("rox", "pv-rox", corev1.ReadOnlyMany)
	pending := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "ns"},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
	e.client.CoreV1().PersistentVolumeClaims("ns").Create(ctx, pending, metav1.CreateOptions{})
	m := e.manager("boot1")
	for _, tc := range []struct {
		uid, claim   string
		claimRO      bool
		wantErr      string
		wantReadOnly bool
	}{
		{"p1", "missing", false, "not found", false},
		{"p2", "pending", false, "is not bound", false},
		{"p3", "rw", false, "", false},
		{"p4", "rw", true, "", true},
		{"p5", "rox", false, "", true},
	} {
		pod := claimPod(tc.uid, tc.claim, tc.claimRO)
		err := m.SetUp(ctx, pod, &pod.Spec.Volumes[0], e.target(pod))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("claim %s: err %v, want %q", tc.claim, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("claim %s: %v", tc.claim, err)
			continue
		}
		if ro := e.plugin.readOnly[e.target(pod)]; ro != tc.wantReadOnly {
			t.Errorf("claim %s (readOnly %v): published readOnly=%v, want %v", tc.claim, tc.claimRO, ro, tc.wantReadOnly)
		}
	}
}

func TestInlineVolumesAndFSGroup(t *testing.T) {
	e := newEnv(t)
	e.plugin.ownership = true
	m := e.manager("boot1")
	gid := int64(4321)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{FSGroup: &gid},
			Volumes: []corev1.Volume{{Name: "share", VolumeSource: corev1.VolumeSource{
				NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/x"}}}},
		},
	}
	v := &pod.Spec.Volumes[0]
	if !m.Handles(v) || m.Handles(&corev1.Volume{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}) {
		t.Fatal("Handles: want nfs handled, emptyDir not")
	}
	e.setUp(m, pod)
	if d, _ := os.ReadFile(filepath.Join(e.target(pod), "data")); string(d) != "u1-share" {
		t.Fatalf("inline volume ID = %q", d)
	}
	if os.Geteuid() == 0 {
		fi, _ := os.Stat(e.target(pod))
		if st := fi.Sys().(*syscall.Stat_t); int64(st.Gid) != gid || fi.Mode()&os.ModeSetgid == 0 {
			t.Errorf("fsGroup not applied: gid %d mode %v", st.Gid, fi.Mode())
		}
	}
}
