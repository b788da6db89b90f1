package deployment

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestComputeHash(t *testing.T) {
	labelled := func(keys ...string) corev1.PodTemplateSpec {
		tmpl := template("web:v1")
		for _, k := range keys {
			tmpl.Labels[k] = "x"
		}
		return tmpl
	}
	a, b := labelled("a", "b", "c", "d", "e"), labelled("e", "d", "c", "b", "a")
	h := ComputeHash(&a, nil)
	for range 20 {
		if got := ComputeHash(&b, nil); got != h {
			t.Fatalf("equal templates hash to %s and %s", h, got)
		}
	}
	if got := ComputeHash(a.DeepCopy(), nil); got != h {
		t.Errorf("a copy hashes to %s, not %s", got, h)
	}
	if errs := validation.IsValidLabelValue(h); len(errs) > 0 || h == "" {
		t.Errorf("hash %q is not a label value: %v", h, errs)
	}

	v2 := labelled("a", "b", "c", "d", "e")
	v2.Spec.Containers[0].Image = "web:v2"
	env := labelled("a", "b", "c", "d", "e")
	env.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "1"}}
	seen := map[string]string{h: "template"}
	for name, got := range map[string]string{
		"another image":        ComputeHash(&v2, nil),
		"an env var":           ComputeHash(&env, nil),
		"one more label":       ComputeHash(ptr.To(labelled("a", "b", "c", "d", "e", "f")), nil),
		"collision count 0":    ComputeHash(&a, ptr.To[int32](0)),
		"collision count 1":    ComputeHash(&a, ptr.To[int32](1)),
		"collision count 2":    ComputeHash(&a, ptr.To[int32](2)),
		"image, collision 1":   ComputeHash(&v2, ptr.To[int32](1)),
		"collision count 1000": ComputeHash(&a, ptr.To[int32](1000)),
	} {
		if prev, ok := seen[got]; ok {
			t.Errorf("%s hashes to %s as %s does", name, got, prev)
		}
		seen[got] = name
	}
	if ComputeHash(&a, ptr.To[int32](1)) != ComputeHash(&b, ptr.To[int32](1)) {
		t.Error("equal templates with equal collision counts hash differently")
	}
}

// Rolling back is a template change to an earlier template: the earlier
// ReplicaSet is reused and takes the next revision, remembering its
// earlier ones in revision-history.
func TestRollbackReusesReplicaSet(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(4, "web:v1", intstr.FromString("25%"), intstr.FromString("25%")))
	w.rollout(allAvailable, nil)
	v1 := w.mustRS("web:v1")
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	w.rollout(allAvailable, nil)
	v2 := w.mustRS("web:v2")

	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v1") })
	w.rollout(allAvailable, nil)
	if n := len(w.rss()); n != 2 {
		t.Fatalf("%d ReplicaSets after rollback, want 2: %s", n, w.describe())
	}
	got := w.mustRS("web:v1")
	if got.UID != v1.UID {
		t.Fatalf("rollback made a new ReplicaSet %s", got.Name)
	}
	if got.Annotations[RevisionAnnotation] != "3" || got.Annotations[revisionHistoryAnnotation] != "1" {
		t.Errorf("v1 annotations %v, want revision 3, revision-history 1", got.Annotations)
	}
	if rev := w.mustRS("web:v2").Annotations[RevisionAnnotation]; rev != "2" {
		t.Errorf("v2 revision %q, want 2", rev)
	}
	d := w.deployment()
	if d.Annotations[RevisionAnnotation] != "3" {
		t.Errorf("deployment revision %q, want 3", d.Annotations[RevisionAnnotation])
	}
	if got := w.sizes(); got["web:v1"] != 4 || got["web:v2"] != 0 {
		t.Errorf("after rollback: %s", w.describe())
	}
	wantProgressing(t, d, corev1.ConditionTrue, reasonNewRSAvailable)

	// Forth and back again: the histories grow.
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	w.rollout(allAvailable, nil)
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v1") })
	w.rollout(allAvailable, nil)
	if a := w.mustRS("web:v2").Annotations; a[RevisionAnnotation] != "4" || a[revisionHistoryAnnotation] != "2" {
		t.Errorf("v2 annotations %v, want revision 4, revision-history 2", a)
	}
	if a := w.mustRS("web:v1").Annotations; a[RevisionAnnotation] != "5" || a[revisionHistoryAnnotation] != "1,3" {
		t.Errorf("v1 annotations %v, want revision 5, revision-history 1,3", a)
	}
	if len(w.rss()) != 2 || w.mustRS("web:v2").UID != v2.UID {
		t.Errorf("ReplicaSets not reused: %s", w.describe())
	}
	t.Logf("%d syncs retried after a conflict with the stale cache", w.conflicts)
}

// Old ReplicaSets beyond revisionHistoryLimit go, lowest revision first,
// once the rollout is complete.
func TestRevisionHistoryLimit(t *testing.T) {
	w := newWorld(t)
	d := w.create(newDeployment(4, "web:v3", intstr.FromString("25%"), intstr.FromString("25%")))
	w.createRS(ownedRS(d, "web:v1", 0, 1))
	w.createRS(ownedRS(d, "web:v2", 0, 2))
	v3 := w.createRS(ownedRS(d, "web:v3", 4, 3))
	w.rollout(allAvailable, nil)
	if len(w.rss()) != 3 || w.deployment().Annotations[RevisionAnnotation] != "3" || w.mustRS("web:v3").UID != v3.UID {
		t.Fatalf("adopting the history: %s, revision %q", w.describe(), w.deployment().Annotations[RevisionAnnotation])
	}

	w.update(func(d *appsv1.Deployment) {
		d.Spec.Template = template("web:v4")
		d.Spec.RevisionHistoryLimit = ptr.To[int32](1)
	})
	w.rollout(allAvailable, func(step int) {
		if replicas(w.mustRS("web:v3")) > 0 && (w.rsFor("web:v1") == nil || w.rsFor("web:v2") == nil) {
			t.Fatalf("step %d: history cleaned up before the rollout completed: %s", step, w.describe())
		}
	})
	w.sync()
	var got []string
	for _, rs := range w.rss() {
		got = append(got, imageOf(rs))
	}
	if !slices.Equal(got, []string{"web:v3", "web:v4"}) {
		t.Fatalf("ReplicaSets %v, want web:v3 and web:v4: %s", got, w.describe())
	}
	if rev := w.mustRS("web:v4").Annotations[RevisionAnnotation]; rev != "4" {
		t.Errorf("v4 revision %q, want 4", rev)
	}
}

func TestCleanup(t *testing.T) {
	type rsCase struct {
		spec, status int32
		rev          int
		deleting     bool
		unobserved   bool // the ReplicaSet controller has not seen its spec
	}
	zero := func(rev int) rsCase { return rsCase{rev: rev} }
	tests := []struct {
		name  string
		limit *int32
		old   []rsCase
		want  []int // revisions deleted
	}{
		{"limit 1 of three empty", ptr.To[int32](1), []rsCase{zero(1), zero(2), zero(3)}, []int{1, 2}},
		{"only empty ones", ptr.To[int32](0), []rsCase{zero(1), {status: 1, rev: 2}, {spec: 1, rev: 3}, {spec: 1, status: 1, rev: 4}}, []int{1}},
		{"limit 0", ptr.To[int32](0), []rsCase{zero(1), zero(2)}, []int{1, 2}},
		{"none empty", ptr.To[int32](0), []rsCase{{spec: 1, status: 1, rev: 1}, {spec: 1, status: 1, rev: 2}}, nil},
		{"already being deleted", ptr.To[int32](0), []rsCase{{rev: 1, deleting: true}}, nil},
		{"scale-down not yet observed", ptr.To[int32](0), []rsCase{{rev: 1, unobserved: true}}, nil},
		{"no limit", nil, []rsCase{zero(1), zero(2), zero(3)}, nil},
		{"unlimited", ptr.To[int32](math.MaxInt32), []rsCase{zero(1), zero(2), zero(3)}, nil},
		{"by revision, not age", ptr.To[int32](1), []rsCase{zero(3), zero(1), zero(2)}, []int{1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			d := w.create(newDeployment(1, "web:new", intstr.FromInt32(1), intstr.FromInt32(0)))
			d.Spec.RevisionHistoryLimit = tc.limit
			var old []*appsv1.ReplicaSet
			for _, c := range tc.old {
				rs := ownedRS(d, fmt.Sprintf("web:v%d", c.rev), c.spec, c.rev)
				rs.Status = appsv1.ReplicaSetStatus{Replicas: c.status, ObservedGeneration: 1}
				rs = w.createRS(rs)
				if c.deleting {
					rs.DeletionTimestamp = ptr.To(metav1.NewTime(w.clock.Now()))
				}
				if c.unobserved {
					rs.Generation = 2
				}
				old = append(old, rs)
			}
			if err := w.c.cleanup(context.Background(), d, old); err != nil {
				t.Fatal(err)
			}
			var deleted []int
			for _, a := range w.client.Actions() {
				if a.GetVerb() == "delete" {
					for _, rs := range old {
						if rs.Name == a.(k8stesting.DeleteAction).GetName() {
							n, _ := strconv.Atoi(rs.Annotations[RevisionAnnotation])
							deleted = append(deleted, n)
						}
					}
				}
			}
			slices.Sort(deleted)
			if !slices.Equal(deleted, tc.want) {
				t.Errorf("deleted revisions %v, want %v", deleted, tc.want)
			}
		})
	}
}

// A ReplicaSet of another owner already has the new ReplicaSet's name:
// the collision count goes up and the next sync uses another name.
func TestHashCollision(t *testing.T) {
	w := newWorld(t)
	d := w.create(newDeployment(1, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0)))
	taken := ownedRS(d, "web:other", 1, 1)
	taken.Name = d.Name + "-" + ComputeHash(&d.Spec.Template, nil)
	taken.OwnerReferences = nil
	taken.Labels = map[string]string{"app": "other"}
	taken.Spec.Selector.MatchLabels = map[string]string{"app": "other"}
	taken.Spec.Template.Labels = map[string]string{"app": "other"}
	w.createRS(taken)

	if err := w.syncErr(); err == nil {
		t.Fatal("sync with a name collision succeeded")
	}
	if cc := w.deployment().Status.CollisionCount; cc == nil || *cc != 1 {
		t.Fatalf("collisionCount %v, want 1", cc)
	}
	w.rollout(allAvailable, nil)
	rs := w.mustRS("web:v1")
	if want := d.Name + "-" + ComputeHash(&d.Spec.Template, ptr.To[int32](1)); rs.Name != want {
		t.Errorf("new ReplicaSet %s, want %s", rs.Name, want)
	}
	if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID {
		t.Errorf("new ReplicaSet controller %+v", ref)
	}
	if other := w.mustRS("web:other"); metav1.GetControllerOf(other) != nil || replicas(other) != 1 {
		t.Errorf("the other ReplicaSet was touched: %+v", other.ObjectMeta)
	}
}

// A ReplicaSet the controller created but its cache does not show yet is
// no collision.
func TestCreatedReplicaSetMissingFromCache(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(2, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0)))
	w.sync()
	if err := w.f.Apps().V1().ReplicaSets().Informer().GetIndexer().Replace(nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := w.c.sync(context.Background(), testKey); err != nil {
		t.Fatalf("sync on a lagging cache: %v", err)
	}
	if cc := w.deployment().Status.CollisionCount; cc != nil {
		t.Errorf("collisionCount %d after a lagging cache", *cc)
	}
	if n := len(w.rss()); n != 1 {
		t.Errorf("%d ReplicaSets, want 1: %s", n, w.describe())
	}
}

// A minReadySeconds change is not a new template: the ReplicaSet is
// updated in place.
func TestMinReadySecondsReachesReplicaSet(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(2, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0)))
	w.rollout(allAvailable, nil)
	w.update(func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = 7 })
	w.rollout(allAvailable, nil)
	if rss := w.rss(); len(rss) != 1 || rss[0].Spec.MinReadySeconds != 7 {
		t.Fatalf("%s, want one ReplicaSet with minReadySeconds 7", w.describe())
	}
}
