package admission

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/persistentvolumeclaim"
	"github.com/skiff/skiff/pkg/registry/storageclass"
	"github.com/skiff/skiff/pkg/storage/storagetest"
)

func classStore(t *testing.T, classes ...*storagev1.StorageClass) func() *registry.Store {
	t.Helper()
	st, _ := storagetest.NewStore(t)
	s := registry.NewStore(storageclass.NewResource(), st)
	for _, c := range classes {
		if _, err := s.Create(context.Background(), "", c, registry.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return func() *registry.Store { return s }
}

func sc(name string, isDefault bool, expand *bool) *storagev1.StorageClass {
	c := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "skiff.io/local-path", AllowVolumeExpansion: expand}
	if isDefault {
		c.Annotations = map[string]string{storageclass.IsDefaultAnnotation: "true"}
	}
	return c
}

func claim(class *string, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "ns"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: class, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}},
	}
}

func claimAttrs(op registry.Operation, pvc, old *corev1.PersistentVolumeClaim) *registry.Attributes {
	a := &registry.Attributes{Operation: op, Resource: persistentvolumeclaim.NewResource(), Namespace: "ns", Name: pvc.Name, Object: pvc}
	if old != nil {
		a.OldObject = old
	}
	return a
}

func TestStorageObjectInUseProtection(t *testing.T) {
	pvc := claim(nil, "1Gi")
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "vol", Finalizers: []string{"other"}}}
	for _, a := range []*registry.Attributes{
		claimAttrs(registry.Create, pvc, nil),
		{Operation: registry.Create, Resource: persistentvolumeclaim.NewResource(), Name: "vol", Object: pv},
	} {
		if err := (StorageObjectInUseProtection{}).Admit(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		if err := (StorageObjectInUseProtection{}).Admit(context.Background(), a); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	if len(pvc.Finalizers) != 1 || pvc.Finalizers[0] != PVCProtectionFinalizer {
		t.Errorf("claim finalizers %v", pvc.Finalizers)
	}
	if len(pv.Finalizers) != 2 || pv.Finalizers[1] != PVProtectionFinalizer {
		t.Errorf("volume finalizers %v", pv.Finalizers)
	}
}

func TestDefaultStorageClass(t *testing.T) {
	store := classStore(t, sc("plain", false, nil), sc("local-path", true, nil))
	adm := DefaultStorageClass{StorageClasses: store}
	for _, tc := range []struct {
		class *string
		want  *string
	}{
		{class: nil, want: ptr.To("local-path")},
		{class: ptr.To(""), want: ptr.To("")},
		{class: ptr.To("plain"), want: ptr.To("plain")},
	} {
		pvc := claim(tc.class, "1Gi")
		if err := adm.Admit(context.Background(), claimAttrs(registry.Create, pvc, nil)); err != nil {
			t.Fatal(err)
		}
		if *pvc.Spec.StorageClassName != *tc.want {
			t.Errorf("class %v became %q, want %q", tc.class, *pvc.Spec.StorageClassName, *tc.want)
		}
	}
	none := DefaultStorageClass{StorageClasses: classStore(t, sc("plain", false, nil))}
	pvc := claim(nil, "1Gi")
	if err := none.Admit(context.Background(), claimAttrs(registry.Create, pvc, nil)); err != nil || pvc.Spec.StorageClassName != nil {
		t.Fatalf("without a default: %v, class %v", err, pvc.Spec.StorageClassName)
	}
}

func TestDefaultClassNewestWins(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(name string, at time.Time, def bool) storagev1.StorageClass {
		c := *sc(name, def, nil)
		c.CreationTimestamp = metav1.NewTime(at)
		return c
	}
	got := defaultClass([]storagev1.StorageClass{mk("old", t0, true), mk("newest-plain", t0.Add(2*time.Hour), false),
		mk("b-new", t0.Add(time.Hour), true), mk("a-new", t0.Add(time.Hour), true)})
	if got == nil || got.Name != "a-new" {
		t.Fatalf("default %v, want a-new (newest, then by name)", got)
	}
}

func TestPersistentVolumeClaimResize(t *testing.T) {
	store := classStore(t, sc("grows", false, ptr.To(true)), sc("fixed", false, ptr.To(false)), sc("unset", false, nil))
	adm := PersistentVolumeClaimResize{StorageClasses: store}
	for _, tc := range []struct {
		class     *string
		from, to  string
		forbidden bool
	}{
		{class: ptr.To("grows"), from: "1Gi", to: "2Gi"},
		{class: ptr.To("fixed"), from: "1Gi", to: "2Gi", forbidden: true},
		{class: ptr.To("unset"), from: "1Gi", to: "2Gi", forbidden: true},
		{class: ptr.To("missing"), from: "1Gi", to: "2Gi", forbidden: true},
		{class: ptr.To(""), from: "1Gi", to: "2Gi", forbidden: true},
		{class: ptr.To("fixed"), from: "2Gi", to: "2Gi"},
	} {
		err := adm.Admit(context.Background(), claimAttrs(registry.Update, claim(tc.class, tc.to), claim(tc.class, tc.from)))
		if tc.forbidden {
			status, ok := err.(apierrors.APIStatus)
			want := `persistentvolumeclaims "data" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize`
			if !ok || !apierrors.IsForbidden(err) || status.Status().Message != want || status.Status().Status != metav1.StatusFailure {
				t.Errorf("class %s: %v, want Forbidden %q", *tc.class, err, want)
			}
		} else if err != nil {
			t.Errorf("class %s %s->%s: %v", *tc.class, tc.from, tc.to, err)
		}
	}
}
