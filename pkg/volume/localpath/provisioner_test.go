package localpath

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/storageclass"
)

func claim(node string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data", UID: "u1", Annotations: map[string]string{
			volumehelpers.AnnSelectedNode: node, volumehelpers.AnnStorageProvisioner: ProvisionerName}},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(ClassName),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

func start(t *testing.T, objs ...runtime.Object) (*Provisioner, *fake.Clientset, *record.FakeRecorder, string) {
	t.Helper()
	client := fake.NewSimpleClientset(objs...)
	dir := filepath.Join(t.TempDir(), "storage")
	rec := record.NewFakeRecorder(100)
	p, err := New(Config{NodeName: "n1", Client: client, Dir: dir, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); p.factory.Shutdown() })
	p.factory.Start(ctx.Done())
	p.factory.WaitForCacheSync(ctx.Done())
	return p, client, rec, dir
}

func events(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestProvisionsSelectedClaim(t *testing.T) {
	p, client, rec, dir := start(t, claim("n1"), DefaultClass())
	ctx := context.Background()
	for range 2 { // idempotent
		if err := p.Sync(ctx, "c/ns/data"); err != nil {
			t.Fatal(err)
		}
	}
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-u1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "pvc-u1_ns_data")
	if pv.Spec.Local == nil || pv.Spec.Local.Path != want {
		t.Fatalf("local source %+v, want path %s", pv.Spec.Local, want)
	}
	if st, err := os.Stat(want); err != nil || st.Mode().Perm() != 0o777 {
		t.Fatalf("volume dir: %v %v", st, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("storage dir mode %v", st.Mode())
	}
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.String() != "1Gi" {
		t.Errorf("capacity %s", q.String())
	}
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != "u1" || pv.Spec.ClaimRef.Name != "data" || pv.Spec.ClaimRef.Namespace != "ns" {
		t.Errorf("claimRef %+v", pv.Spec.ClaimRef)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.StorageClassName != ClassName ||
		pv.Annotations[volumehelpers.AnnDynamicallyProvisioned] != ProvisionerName || len(pv.Spec.AccessModes) != 1 {
		t.Errorf("pv %+v", pv)
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || terms[0].MatchExpressions[0].Key != corev1.LabelHostname || terms[0].MatchExpressions[0].Values[0] != "n1" {
		t.Errorf("node affinity %+v", terms)
	}
	ev := strings.Join(events(rec), "\n")
	if !strings.Contains(ev, "Normal Provisioning ") || !strings.Contains(ev, "Normal ProvisioningSucceeded Successfully provisioned volume pvc-u1") {
		t.Errorf("events:\n%s", ev)
	}
}

func TestLeavesOtherClaims(t *testing.T) {
	other := claim("n2")
	other.Name, other.UID = "other", "u2"
	unannotated := claim("n1")
	unannotated.Name, unannotated.UID = "plain", "u3"
	delete(unannotated.Annotations, volumehelpers.AnnStorageProvisioner)
	bound := claim("n1")
	bound.Name, bound.UID, bound.Spec.VolumeName = "bound", "u4", "pv-x"
	p, client, _, _ := start(t, other, unannotated, bound, DefaultClass())
	for _, k := range []string{"c/ns/other", "c/ns/plain", "c/ns/bound", "c/ns/missing"} {
		if err := p.Sync(context.Background(), k); err != nil {
			t.Fatal(k, err)
		}
	}
	list, _ := client.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{})
	if len(list.Items) != 0 {
		t.Fatalf("provisioned %d volumes for claims not ours", len(list.Items))
	}
}

func TestMissingClassRetries(t *testing.T) {
	p, _, rec, _ := start(t, claim("n1"))
	if err := p.Sync(context.Background(), "c/ns/data"); err == nil {
		t.Fatal("no error without a class")
	}
	if ev := events(rec); len(ev) != 1 || !strings.Contains(ev[0], "ProvisioningFailed") {
		t.Errorf("events %v", ev)
	}
}

func released(name, path, node string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: "pvuid", Annotations: map[string]string{volumehelpers.AnnDynamicallyProvisioned: ProvisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased},
	}
}

func TestDeletesReleasedVolume(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "storage")
	path := filepath.Join(dir, "pvc-u1_ns_data")
	if err := os.MkdirAll(filepath.Join(path, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	retained := released("keep", filepath.Join(dir, "keep"), "n1")
	retained.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	bound := released("bound", filepath.Join(dir, "bound"), "n1")
	bound.Status.Phase = corev1.VolumeBound
	elsewhere := released("elsewhere", filepath.Join(dir, "elsewhere"), "n2")
	outside := released("outside", filepath.Join(base, "precious"), "n1")
	for _, d := range []string{"keep", "bound", "elsewhere"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(base, "precious"), 0o777); err != nil {
		t.Fatal(err)
	}
	client := fake.NewSimpleClientset(released("pvc-u1", path, "n1"), retained, bound, elsewhere, outside)
	p, err := New(Config{NodeName: "n1", Client: client, Dir: dir, Recorder: record.NewFakeRecorder(10)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); p.factory.Shutdown() }()
	p.factory.Start(ctx.Done())
	p.factory.WaitForCacheSync(ctx.Done())
	for _, name := range []string{"pvc-u1", "keep", "bound", "elsewhere", "outside"} {
		if err := p.Sync(ctx, "v/"+name); err != nil {
			t.Fatal(name, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("volume dir still there: %v", err)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-u1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pv not deleted: %v", err)
	}
	for _, d := range []string{filepath.Join(dir, "keep"), filepath.Join(dir, "bound"), filepath.Join(dir, "elsewhere"), filepath.Join(base, "precious")} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	list, _ := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if len(list.Items) != 4 {
		t.Errorf("%d volumes left, want 4", len(list.Items))
	}
	// Repeating after the deletion is harmless.
	if err := p.Sync(ctx, "v/pvc-u1"); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureDefaultClassKeepsEdits(t *testing.T) {
	edited := DefaultClass()
	edited.Annotations[storageclass.IsDefaultAnnotation] = "false"
	client := fake.NewSimpleClientset(edited)
	create := func(ctx context.Context, sc *storagev1.StorageClass) error {
		_, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
		return err
	}
	if err := EnsureDefaultClass(context.Background(), create); err != nil {
		t.Fatal(err)
	}
	got, _ := client.StorageV1().StorageClasses().Get(context.Background(), ClassName, metav1.GetOptions{})
	if got.Annotations[storageclass.IsDefaultAnnotation] != "false" {
		t.Error("user's edit overwritten")
	}
	empty := fake.NewSimpleClientset()
	create = func(ctx context.Context, sc *storagev1.StorageClass) error {
		_, err := empty.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
		return err
	}
	if err := EnsureDefaultClass(context.Background(), create); err != nil {
		t.Fatal(err)
	}
	got, err := empty.StorageV1().StorageClasses().Get(context.Background(), ClassName, metav1.GetOptions{})
	if err != nil || got.Provisioner != ProvisionerName || *got.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		t.Errorf("class %+v %v", got, err)
	}
}
