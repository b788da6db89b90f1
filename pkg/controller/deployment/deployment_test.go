package deployment

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// An orphan ReplicaSet matching the selector (say, left by a Deployment
// deleted with --cascade=orphan) is adopted and, with the same template,
// serves as the new ReplicaSet; one controlled by someone else is left
// alone.
func TestAdoptsOrphanReplicaSet(t *testing.T) {
	w := newWorld(t)
	d := w.create(newDeployment(2, "web:v1", intstr.FromString("25%"), intstr.FromString("25%")))
	orphan := ownedRS(d, "web:v1", 2, 1)
	orphan.OwnerReferences = nil
	orphan = w.createRS(orphan)
	foreign := ownedRS(d, "web:foreign", 3, 1)
	foreign.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "other", UID: "other-uid", Controller: ptr.To(true)}}
	w.createRS(foreign)

	w.rollout(allAvailable, nil)
	rs := w.mustRS("web:v1")
	if rs.UID != orphan.UID {
		t.Fatalf("a new ReplicaSet was made: %s", w.describe())
	}
	ref := metav1.GetControllerOf(rs)
	want := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: testName, UID: d.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	if ref == nil || ref.APIVersion != want.APIVersion || ref.Kind != want.Kind || ref.Name != want.Name || ref.UID != want.UID ||
		!ptr.Deref(ref.Controller, false) || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Fatalf("controller of the orphan %+v, want %+v", ref, want)
	}
	if n := len(w.rss()); n != 2 {
		t.Errorf("%d ReplicaSets, want the adopted and the foreign one: %s", n, w.describe())
	}
	f := w.mustRS("web:foreign")
	if ref := metav1.GetControllerOf(f); ref == nil || ref.UID != "other-uid" || replicas(f) != 3 {
		t.Errorf("foreign ReplicaSet changed: %+v", f)
	}
	got := w.deployment()
	if got.Status.Replicas != 2 || got.Annotations[RevisionAnnotation] != "1" {
		t.Errorf("status %+v, revision %q: the foreign ReplicaSet must not count", got.Status, got.Annotations[RevisionAnnotation])
	}
}

// A ReplicaSet whose labels stop matching is released.
func TestReleasesReplicaSetThatStopsMatching(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(2, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0)))
	w.rollout(allAvailable, nil)
	rs := w.mustRS("web:v1")
	rs.Labels = map[string]string{"app": "detached"}
	if _, err := w.client.AppsV1().ReplicaSets(testNS).Update(context.Background(), rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The released ReplicaSet still holds the name of the template's
	// ReplicaSet: the new one gets another after a collision, as upstream.
	if err := w.syncErr(); err == nil || !strings.Contains(err.Error(), "collision") {
		t.Fatalf("sync: %v, want a name collision", err)
	}
	for _, got := range w.rss() {
		if got.UID == rs.UID {
			if ref := metav1.GetControllerOf(got); ref != nil {
				t.Errorf("detached ReplicaSet still controlled by %+v", ref)
			}
		}
	}
	w.rollout(allAvailable, nil)
	owned := w.owned(w.deployment())
	if len(owned) != 1 || owned[0].UID == rs.UID || replicas(owned[0]) != 2 {
		t.Errorf("after release: %s", w.describe())
	}
}

func TestEmptySelector(t *testing.T) {
	w := newWorld(t)
	d := newDeployment(2, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.Selector = &metav1.LabelSelector{}
	w.create(d)
	w.sync()
	if n := len(w.rss()); n != 0 {
		t.Errorf("%d ReplicaSets for a Deployment selecting everything", n)
	}
	if ev := w.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning SelectingAll") {
		t.Errorf("events %q, want a SelectingAll warning", ev)
	}
	if d := w.deployment(); d.Status.ObservedGeneration != d.Generation {
		t.Errorf("observedGeneration %d, want %d", d.Status.ObservedGeneration, d.Generation)
	}
}

// A Deployment being deleted only reports status: no ReplicaSet is made
// or adopted.
func TestDeletingDeployment(t *testing.T) {
	w := newWorld(t)
	d := newDeployment(2, "web:v1", intstr.FromInt32(1), intstr.FromInt32(0))
	d.DeletionTimestamp = ptr.To(metav1.NewTime(w.clock.Now()))
	d.Finalizers = []string{"foregroundDeletion"}
	d = w.create(d)
	orphan := ownedRS(d, "web:v1", 2, 1)
	orphan.OwnerReferences = nil
	w.createRS(orphan)
	w.sync()
	rss := w.rss()
	if len(rss) != 1 || metav1.GetControllerOf(rss[0]) != nil {
		t.Errorf("deleting Deployment acted on ReplicaSets: %s", w.describe())
	}
	if got := w.deployment(); got.Status.ObservedGeneration != got.Generation {
		t.Errorf("status %+v not synced", got.Status)
	}
}

func TestMissingDeployment(t *testing.T) {
	w := newWorld(t)
	if err := w.syncErr(); err != nil {
		t.Fatal(err)
	}
	for _, a := range w.client.Actions() {
		if a.GetVerb() != "list" { // the refreshes
			t.Errorf("action %v", a)
		}
	}
}

// Scaling a Deployment without a rollout resizes its only ReplicaSet and
// records it in the replicas annotations.
func TestScaleCompleteDeployment(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(3, "web:v1", intstr.FromString("25%"), intstr.FromString("25%")))
	w.rollout(allAvailable, nil)
	w.events()
	w.update(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](10) })
	w.sync()
	rs := w.mustRS("web:v1")
	if replicas(rs) != 10 || rs.Annotations[desiredReplicasAnnotation] != "10" || rs.Annotations[maxReplicasAnnotation] != "13" {
		t.Fatalf("after scaling: %s, annotations %v", w.describe(), rs.Annotations)
	}
	if ev := w.events(); len(ev) != 1 || ev[0] != "Normal ScalingReplicaSet Scaled up replica set "+rs.Name+" from 3 to 10" {
		t.Errorf("events %q", ev)
	}
	w.rollout(allAvailable, nil)
	d := w.deployment()
	if d.Status.AvailableReplicas != 10 || len(w.rss()) != 1 {
		t.Errorf("status %+v: %s", d.Status, w.describe())
	}
	wantProgressing(t, d, corev1.ConditionTrue, reasonNewRSAvailable)
}
