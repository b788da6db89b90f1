package persistentvolumeclaim

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func claim(size string) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
	}}
	strategy{}.Default(c)
	return c
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*corev1.PersistentVolumeClaim)
		want []string
	}{
		{"valid", func(*corev1.PersistentVolumeClaim) {}, nil},
		{"no access modes", func(c *corev1.PersistentVolumeClaim) { c.Spec.AccessModes = nil }, []string{"spec.accessModes: Required value: at least 1 access mode is required"}},
		{"no request", func(c *corev1.PersistentVolumeClaim) { c.Spec.Resources.Requests = nil }, []string{"spec.resources[storage]: Required value"}},
		{"zero request", func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("0")
		}, []string{
			`spec.resources[storage]: Invalid value: "0": must be greater than zero`}},
		{"bad class", func(c *corev1.PersistentVolumeClaim) { c.Spec.StorageClassName = ptr.To("Fast_SSD") }, []string{
			`spec.storageClassName: Invalid value: "Fast_SSD": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
	}
	for _, tc := range cases {
		c := claim("1Gi")
		tc.mut(c)
		validationtest.Expect(t, tc.name, Validate(c), tc.want)
	}
}

func TestUpdate(t *testing.T) {
	bound := func() *corev1.PersistentVolumeClaim {
		c := claim("1Gi")
		c.Spec.VolumeName = "pv1"
		c.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
		return c
	}
	const immutable = "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
	cases := []struct {
		name     string
		old      *corev1.PersistentVolumeClaim
		mut      func(*corev1.PersistentVolumeClaim)
		wantErrs []string
	}{
		{"binder sets the volume", claim("1Gi"), func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv1" }, nil},
		{"bound claim grows", bound(), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		}, nil},
		{"bound claim shrinks below capacity", bound(), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("512Mi")
		}, []string{"spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"}},
		{"unbound claim may not grow", claim("1Gi"), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		}, []string{immutable}},
		{"access modes are immutable", bound(), func(c *corev1.PersistentVolumeClaim) {
			c.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		}, []string{immutable}},
		{"volume name set once", bound(), func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv2" }, []string{immutable}},
	}
	for _, tc := range cases {
		c := tc.old.DeepCopy()
		tc.mut(c)
		validationtest.Expect(t, tc.name, ValidateUpdate(c, tc.old), tc.wantErrs)
	}
}

func TestRow(t *testing.T) {
	c := claim("1Gi")
	c.Status.Phase = corev1.ClaimPending
	row := NewResource().Table.Row(c, time.Now())
	want := []interface{}{"data", "Pending", "", "", "", "", "<unset>", "<unknown>", "Filesystem"}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("row %q\nwant %q", row, want)
	}
}
