package persistentvolume

import (
	"context"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func TestAccessModes(t *testing.T) {
	got := AccessModes([]corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOnce, corev1.ReadOnlyMany})
	if got != "RWO,ROX,RWX" {
		t.Fatalf("got %q", got)
	}
}

func hostPathPV() *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}},
	}}
	strategy{}.Default(pv)
	return pv
}

func TestDefaultsAndValidate(t *testing.T) {
	pv := hostPathPV()
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || *pv.Spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		t.Fatalf("defaults %+v", pv.Spec)
	}
	cases := []struct {
		name string
		mut  func(*corev1.PersistentVolume)
		want []string
	}{
		{"valid", func(*corev1.PersistentVolume) {}, nil},
		{"no access modes", func(pv *corev1.PersistentVolume) { pv.Spec.AccessModes = nil }, []string{"spec.accessModes: Required value"}},
		{"RWOP with others", func(pv *corev1.PersistentVolume) {
			pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod, corev1.ReadOnlyMany}
		}, []string{"spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"}},
		{"no capacity", func(pv *corev1.PersistentVolume) { pv.Spec.Capacity = nil }, []string{
			"spec.capacity: Required value", `spec.capacity: Unsupported value: null: supported values: "storage"`}},
		{"zero capacity", func(pv *corev1.PersistentVolume) { pv.Spec.Capacity[corev1.ResourceStorage] = resource.MustParse("0") }, []string{
			`spec.capacity[storage]: Invalid value: "0": must be greater than zero`}},
		{"no source", func(pv *corev1.PersistentVolume) { pv.Spec.HostPath = nil }, []string{"spec: Required value: must specify a volume type"}},
		{"two sources", func(pv *corev1.PersistentVolume) {
			pv.Spec.NFS = &corev1.NFSVolumeSource{Server: "nfs", Path: "/export"}
		}, []string{"spec.nfs: Forbidden: may not specify more than 1 volume type"}},
		{"host path required", func(pv *corev1.PersistentVolume) { pv.Spec.HostPath.Path = "" }, []string{"spec.hostPath.path: Required value"}},
		{"local needs affinity", func(pv *corev1.PersistentVolume) {
			pv.Spec.HostPath, pv.Spec.Local = nil, &corev1.LocalVolumeSource{Path: "/mnt/disk"}
		}, []string{"spec.nodeAffinity: Required value: Local volume requires node affinity"}},
		{"reclaim policy", func(pv *corev1.PersistentVolume) { pv.Spec.PersistentVolumeReclaimPolicy = "Keep" }, []string{
			`spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"`}},
	}
	for _, tc := range cases {
		pv := hostPathPV()
		tc.mut(pv)
		validationtest.Expect(t, tc.name, Validate(pv), tc.want)
	}
}

func TestSourceIsImmutable(t *testing.T) {
	old := hostPathPV()
	pv := old.DeepCopy()
	pv.Spec.HostPath.Path = "/other"
	errs := strategy{}.ValidateUpdate(context.Background(), pv, old)
	if len(errs) != 1 || errs[0].Error() != "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation" {
		t.Fatalf("%v", errs)
	}
}

func TestPhaseTransitionTime(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	res := NewResource(clk)
	pv := hostPathPV()
	res.Strategy.PrepareForCreate(context.Background(), pv)
	created := pv.Status.LastPhaseTransitionTime
	if pv.Status.Phase != corev1.VolumePending || created == nil || !created.Time.Equal(clk.Now()) {
		t.Fatalf("create status %+v", pv.Status)
	}
	clk.SetTime(clk.Now().Add(time.Hour))
	bound := pv.DeepCopy()
	bound.Status.Phase = corev1.VolumeBound
	res.Status.PrepareForUpdate(context.Background(), bound, pv)
	if !bound.Status.LastPhaseTransitionTime.Time.Equal(clk.Now()) {
		t.Fatalf("phase change kept %v", bound.Status.LastPhaseTransitionTime)
	}
	same := bound.DeepCopy()
	same.Status.LastPhaseTransitionTime = nil
	res.Status.PrepareForUpdate(context.Background(), same, bound)
	if !same.Status.LastPhaseTransitionTime.Equal(bound.Status.LastPhaseTransitionTime) {
		t.Fatalf("unchanged phase lost its time: %v", same.Status.LastPhaseTransitionTime)
	}
}

func TestRow(t *testing.T) {
	pv := hostPathPV()
	pv.Annotations = map[string]string{BetaStorageClassAnnotation: "beta"}
	pv.Spec.StorageClassName = "local"
	pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "data"}
	pv.Status.Phase = corev1.VolumeBound
	row := NewResource(clocktesting.NewFakePassiveClock(time.Now())).Table.Row(pv, time.Now())
	want := []interface{}{"pv1", "1Gi", "RWO", "Retain", "Bound", "ns/data", "beta", "<unset>", "", "<unknown>", "Filesystem"}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("row %q\nwant %q", row, want)
	}
}
