package storageclass

import (
	"context"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func TestDefaultsValidationAndRow(t *testing.T) {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-path", Annotations: map[string]string{IsDefaultAnnotation: "true"}},
		Provisioner: "rancher.io/local-path", Parameters: map[string]string{"a": "b"}}
	st := strategy{}
	st.Default(sc)
	if *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Fatalf("defaults %+v", sc)
	}
	if errs := Validate(sc); len(errs) > 0 {
		t.Fatal(errs)
	}
	row := NewResource().Table.Row(sc, time.Now())
	want := []interface{}{"local-path (default)", "rancher.io/local-path", "Delete", "Immediate", false, "<unknown>"}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("row %q", row)
	}

	if got := Validate(&storagev1.StorageClass{}); len(got) != 2 || got[0].Error() != "provisioner: Required value" || got[1].Error() != "volumeBindingMode: Required value" {
		t.Fatalf("empty class: %v", got)
	}
	changed := sc.DeepCopy()
	changed.Provisioner = "example.com/other"
	changed.Parameters["a"] = "c"
	validationtest.Expect(t, "update", st.ValidateUpdate(context.Background(), changed, sc),
		[]string{"parameters: Forbidden: updates to parameters are forbidden.", "provisioner: Forbidden: updates to provisioner are forbidden."})
}
