package history

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

var kind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

func template(image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: image}}},
	}
}

// The data is the patch `kubectl rollout undo` applies, and decodes back
// to the template.
func TestPatchRoundTrip(t *testing.T) {
	data, err := Patch(template("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data.Raw), `{"spec":{"template":{"$patch":"replace"`) {
		t.Fatalf("patch %s", data.Raw)
	}
	got, err := Template(&appsv1.ControllerRevision{Data: data})
	if err != nil || got.Spec.Containers[0].Image != "v1" || got.Labels["app"] != "web" {
		t.Fatalf("template %+v, %v", got, err)
	}
}

func TestHashAndName(t *testing.T) {
	a, b := Hash([]byte("x"), nil), Hash([]byte("x"), ptr.To[int32](1))
	if a == b || a != Hash([]byte("x"), nil) {
		t.Fatalf("hashes %s %s", a, b)
	}
	long := strings.Repeat("a", 80)
	if n := Name(long, a); len(n) > maxNameLength || !strings.HasSuffix(n, "-"+a) {
		t.Fatalf("name %q", n)
	}
}

// A name taken by other data steps the collision count; an equal
// revision is returned as is.
func TestCreateCollision(t *testing.T) {
	owner := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u"}}
	data, _ := Patch(template("v1"))
	squatter := New(owner, kind, nil, data, 1, ptr.To[int32](0))
	squatter.Data.Raw = []byte(`{"other":true}`)
	client := fake.NewClientset(squatter)
	s := Store{Client: client}
	var collisions int32
	rev, err := s.Create(context.Background(), owner, kind, nil, data, 1, &collisions)
	if err != nil {
		t.Fatal(err)
	}
	if collisions != 1 || rev.Name == squatter.Name || rev.Labels[appsv1.ControllerRevisionHashLabelKey] == "" {
		t.Fatalf("collisions %d, revision %s", collisions, rev.Name)
	}
	again, err := s.Create(context.Background(), owner, kind, nil, data, 2, &collisions)
	if err != nil || again.Name != rev.Name || again.Revision != 1 || collisions != 1 {
		t.Fatalf("second create: %v %v, collisions %d", again, err, collisions)
	}
}
