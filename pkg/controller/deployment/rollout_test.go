package deployment

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestFenceposts(t *testing.T) {
	i, p := intstr.FromInt32, intstr.FromString
	tests := []struct {
		name                   string
		replicas               int32
		surge, unavailable     *intstr.IntOrString
		wantSurge, wantUnavail int32 // fenceposts
		wantMaxUnavailable     int32 // maxUnavailable, clamped
	}{
		{"3 replicas 25%/25%: surge rounds up, unavailable down", 3, ptr.To(p("25%")), ptr.To(p("25%")), 1, 0, 0},
		{"10 replicas 25%/25%", 10, ptr.To(p("25%")), ptr.To(p("25%")), 3, 2, 2},
		{"5 replicas 50%/50%", 5, ptr.To(p("50%")), ptr.To(p("50%")), 3, 2, 2},
		{"1 replica 25%/25%", 1, ptr.To(p("25%")), ptr.To(p("25%")), 1, 0, 0},
		{"integers", 10, ptr.To(i(3)), ptr.To(i(2)), 3, 2, 2},
		{"both zero: unavailable becomes 1", 10, ptr.To(i(0)), ptr.To(i(0)), 0, 1, 1},
		{"both 0%: unavailable becomes 1", 10, ptr.To(p("0%")), ptr.To(p("0%")), 0, 1, 1},
		{"both unset: unavailable becomes 1", 10, nil, nil, 0, 1, 1},
		{"surge only", 4, ptr.To(i(1)), ptr.To(i(0)), 1, 0, 0},
		{"100%/100%", 4, ptr.To(p("100%")), ptr.To(p("100%")), 4, 4, 4},
		{"unavailable above replicas is clamped", 3, ptr.To(i(0)), ptr.To(i(5)), 0, 5, 3},
		{"zero replicas", 0, ptr.To(p("25%")), ptr.To(p("25%")), 0, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(tc.replicas),
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: tc.surge, MaxUnavailable: tc.unavailable}},
			}}
			s, u := fenceposts(d)
			if s != tc.wantSurge || u != tc.wantUnavail {
				t.Errorf("fenceposts = %d/%d, want %d/%d", s, u, tc.wantSurge, tc.wantUnavail)
			}
			if got := maxSurge(d); got != tc.wantSurge {
				t.Errorf("maxSurge = %d, want %d", got, tc.wantSurge)
			}
			if got := maxUnavailable(d); got != tc.wantMaxUnavailable {
				t.Errorf("maxUnavailable = %d, want %d", got, tc.wantMaxUnavailable)
			}
		})
	}
	t.Run("Recreate has no fenceposts", func(t *testing.T) {
		d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
		if s, u := fenceposts(d); s != 0 || u != 0 || maxUnavailable(d) != 0 {
			t.Errorf("fenceposts = %d/%d, maxUnavailable %d; want 0/0, 0", s, u, maxUnavailable(d))
		}
	})
}

// totals returns the sum of spec.replicas and the pods that are surely
// available: a ReplicaSet scaled down loses its pods at once, a new pod
// counts only once its ReplicaSet reports it available.
func (w *world) totals() (spec, available int32) {
	for _, rs := range w.rss() {
		spec += replicas(rs)
		available += min(replicas(rs), rs.Status.AvailableReplicas)
	}
	return spec, available
}

func TestRollingUpdate(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(10, "web:v1", intstr.FromInt32(3), intstr.FromInt32(2)))
	w.rollout(allAvailable, nil)
	v1 := w.mustRS("web:v1")
	if replicas(v1) != 10 || v1.Annotations[RevisionAnnotation] != "1" || w.deployment().Annotations[RevisionAnnotation] != "1" {
		t.Fatalf("first rollout: %s, deployment revision %q", w.describe(), w.deployment().Annotations[RevisionAnnotation])
	}
	w.events()

	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	l := lag{v1.Name: 10}
	steps := w.rollout(l.available, func(step int) {
		spec, available := w.totals()
		if spec > 13 {
			t.Fatalf("step %d: %d replicas, above replicas+maxSurge 13: %s", step, spec, w.describe())
		}
		if available < 8 {
			t.Fatalf("step %d: %d available, below replicas-maxUnavailable 8: %s", step, available, w.describe())
		}
	})
	if steps < 4 {
		t.Errorf("rollout took %d syncs: it did not wait for new pods to become available", steps)
	}

	v1, v2 := w.mustRS("web:v1"), w.mustRS("web:v2")
	if replicas(v1) != 0 || replicas(v2) != 10 || len(w.rss()) != 2 {
		t.Fatalf("after rollout: %s", w.describe())
	}
	d := w.deployment()
	if d.Annotations[RevisionAnnotation] != "2" || v2.Annotations[RevisionAnnotation] != "2" || v1.Annotations[RevisionAnnotation] != "1" {
		t.Errorf("revisions: deployment %q, v1 %q, v2 %q; want 2, 1, 2", d.Annotations[RevisionAnnotation],
			v1.Annotations[RevisionAnnotation], v2.Annotations[RevisionAnnotation])
	}
	if v2.Annotations[desiredReplicasAnnotation] != "10" || v2.Annotations[maxReplicasAnnotation] != "13" {
		t.Errorf("v2 replicas annotations %v, want desired 10 and max 13", v2.Annotations)
	}
	wantProgressing(t, d, corev1.ConditionTrue, reasonNewRSAvailable)
	if msg := progressingOf(d).Message; !strings.Contains(msg, v2.Name) {
		t.Errorf("Progressing message %q does not name %s", msg, v2.Name)
	}
	if c := availableOf(d); c == nil || c.Status != corev1.ConditionTrue || c.Reason != reasonMinimumAvailable {
		t.Errorf("Available = %+v", c)
	}
	want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 10, UpdatedReplicas: 10, ReadyReplicas: 10, AvailableReplicas: 10}
	got := d.Status
	got.Conditions = nil
	if !apiequality.Semantic.DeepEqual(got, want) || d.Generation != 2 {
		t.Errorf("status %+v (generation %d), want %+v", got, d.Generation, want)
	}

	// Upstream's first moves: the new ReplicaSet starts at maxSurge, the
	// old one loses maxUnavailable.
	ev := w.events()
	first := []string{
		fmt.Sprintf("Normal ScalingReplicaSet Scaled up replica set %s from 0 to 3", v2.Name),
		fmt.Sprintf("Normal ScalingReplicaSet Scaled down replica set %s from 10 to 8", v1.Name),
	}
	if len(ev) < 2 || !slices.Equal(ev[:2], first) {
		t.Fatalf("events %q, want them to start with %q", ev, first)
	}
	if last := ev[len(ev)-1]; !strings.Contains(last, "Scaled down replica set "+v1.Name) || !strings.HasSuffix(last, " to 0") {
		t.Errorf("last event %q, want the old ReplicaSet scaled to 0", last)
	}

	// Once complete, more syncs change nothing.
	before := w.client.Actions()
	w.sync()
	for _, a := range w.client.Actions()[len(before):] {
		if a.GetVerb() != "list" && a.GetVerb() != "get" {
			t.Errorf("sync of a complete rollout made %s %s/%s", a.GetVerb(), a.GetResource().Resource, a.GetSubresource())
		}
	}
}

// With the new pods never available the rollout stops at replicas+maxSurge
// pods with replicas-maxUnavailable of them available (upstream's docs:
// 8 old and 5 new of 10 with maxSurge 3, maxUnavailable 2); scaling to 15
// then spreads the 5 extra replicas 3:2 (11 old, 7 new), as the docs'
// proportional scaling example shows.
func TestRollingUpdateHaltsOnUnavailablePodsAndScalesProportionally(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(10, "web:v1", intstr.FromInt32(3), intstr.FromInt32(2)))
	w.rollout(allAvailable, nil)
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:bad") })
	for range 8 {
		w.sync()
		w.settle(noneAvailableFor("web:bad"))
	}
	if got := w.sizes(); got["web:v1"] != 8 || got["web:bad"] != 5 {
		t.Fatalf("halted rollout: %s, want 8 old and 5 new", w.describe())
	}
	d := w.deployment()
	got := d.Status
	got.Conditions = nil
	want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 13, UpdatedReplicas: 5, ReadyReplicas: 8, AvailableReplicas: 8, UnavailableReplicas: 5}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("status %+v, want %+v", got, want)
	}
	if c := availableOf(d); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("Available = %+v, want True: 8 of 10 with maxUnavailable 2", c)
	}
	wantProgressing(t, d, corev1.ConditionTrue, reasonRSUpdated)

	w.events()
	w.update(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](15) })
	w.sync()
	if got := w.sizes(); got["web:v1"] != 11 || got["web:bad"] != 7 {
		t.Fatalf("after scaling to 15: %s, want 11 old and 7 new", w.describe())
	}
	for _, rs := range w.rss() {
		if rs.Annotations[desiredReplicasAnnotation] != "15" || rs.Annotations[maxReplicasAnnotation] != "18" {
			t.Errorf("%s annotations %v, want desired 15, max 18", rs.Name, rs.Annotations)
		}
	}
	if ev := w.events(); len(ev) != 2 {
		t.Errorf("events %q, want one scale-up for each ReplicaSet", ev)
	}
}

// The brief's case: mid-rollout with 5 old and 3 new (not available)
// replicas of 8, scaling to 16 doubles both (upstream: each gets
// round(size*16/8) - size, no leftover). The rollout then finishes.
func TestProportionalScalingMidRollout(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(8, "web:v1", intstr.FromInt32(0), intstr.FromInt32(3)))
	w.rollout(allAvailable, nil)
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	for range 5 {
		w.sync()
		w.settle(noneAvailableFor("web:v2"))
	}
	if got := w.sizes(); got["web:v1"] != 5 || got["web:v2"] != 3 {
		t.Fatalf("mid-rollout: %s, want 5 old and 3 new", w.describe())
	}
	w.update(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](16) })
	w.sync()
	if got := w.sizes(); got["web:v1"] != 10 || got["web:v2"] != 6 {
		t.Fatalf("after scaling to 16: %s, want 10 old and 6 new", w.describe())
	}
	if d := w.deployment(); d.Status.ObservedGeneration != d.Generation {
		t.Errorf("observedGeneration %d, generation %d", d.Status.ObservedGeneration, d.Generation)
	}
	w.settle(noneAvailableFor("web:v2"))
	w.sync()
	if got := w.sizes(); got["web:v1"] != 10 || got["web:v2"] != 6 {
		t.Fatalf("a sync after the scale moved the stuck rollout: %s", w.describe())
	}
	w.rollout(allAvailable, func(int) {
		// maxSurge 0: never above 16; the 10 available never drop.
		if spec, available := w.totals(); spec > 16 || available < 10 {
			t.Fatalf("%d replicas, %d available: %s", spec, available, w.describe())
		}
	})
	if got := w.sizes(); got["web:v1"] != 0 || got["web:v2"] != 16 {
		t.Fatalf("after the rollout: %s", w.describe())
	}
}

// TestScale checks the distribution of a replica count change over the
// active ReplicaSets against upstream's expected numbers (its sync_test
// TestScale cases, with maxSurge 0 and maxUnavailable 0 unless given).
func TestScale(t *testing.T) {
	type rsCase struct {
		name    string
		n       int32
		desired int32 // desired-replicas annotation when not the old count
		avail   int32
	}
	dep := func(n int32, surge int32) *appsv1.Deployment {
		return newDeployment(n, "web:new", intstr.FromInt32(surge), intstr.FromInt32(0))
	}
	tests := []struct {
		name        string
		from, to    *appsv1.Deployment
		newRS       *rsCase
		old         []rsCase // newest first
		want        map[string]int32
		wantUpdates *int // ReplicaSet updates, when checked
	}{
		{name: "10 -> 12", from: dep(10, 0), to: dep(12, 0), newRS: &rsCase{name: "v1", n: 10},
			want: map[string]int32{"v1": 12}},
		{name: "10 -> 5", from: dep(10, 0), to: dep(5, 0), newRS: &rsCase{name: "v1", n: 10},
			want: map[string]int32{"v1": 5}},
		{name: "proportional 5 -> 10", from: dep(5, 0), to: dep(10, 0), newRS: &rsCase{name: "v2", n: 2},
			old: []rsCase{{name: "v1", n: 3}}, want: map[string]int32{"v2": 4, "v1": 6}},
		{name: "proportional 5 -> 3", from: dep(5, 0), to: dep(3, 0), newRS: &rsCase{name: "v2", n: 2},
			old: []rsCase{{name: "v1", n: 3}}, want: map[string]int32{"v2": 1, "v1": 2}},
		{name: "proportional 9 -> 4", from: dep(9, 0), to: dep(4, 0), newRS: &rsCase{name: "v2", n: 8},
			old: []rsCase{{name: "v1", n: 1}}, want: map[string]int32{"v2": 4, "v1": 0}},
		{name: "proportional 7 -> 10", from: dep(7, 0), to: dep(10, 0), newRS: &rsCase{name: "v3", n: 2},
			old: []rsCase{{name: "v2", n: 3}, {name: "v1", n: 2}}, want: map[string]int32{"v3": 3, "v2": 4, "v1": 3}},
		{name: "proportional 13 -> 8", from: dep(13, 0), to: dep(8, 0), newRS: &rsCase{name: "v3", n: 2},
			old: []rsCase{{name: "v2", n: 8}, {name: "v1", n: 3}}, want: map[string]int32{"v3": 1, "v2": 5, "v1": 2}},
		{name: "leftover to the newest when growing 3 -> 4", from: dep(3, 0), to: dep(4, 0), newRS: &rsCase{name: "v3", n: 1},
			old: []rsCase{{name: "v2", n: 1}, {name: "v1", n: 1}}, want: map[string]int32{"v3": 2, "v2": 1, "v1": 1}},
		{name: "leftover from the oldest when shrinking 3 -> 2", from: dep(3, 0), to: dep(2, 0), newRS: &rsCase{name: "v3", n: 1},
			old: []rsCase{{name: "v2", n: 1}, {name: "v1", n: 1}}, want: map[string]int32{"v3": 1, "v2": 1, "v1": 0}},
		{name: "no new ReplicaSet 4 -> 5", from: dep(4, 0), to: dep(5, 0),
			old: []rsCase{{name: "v2", n: 2}, {name: "v1", n: 2}}, want: map[string]int32{"v2": 3, "v1": 2}},
		{name: "to zero 6 -> 0", from: dep(6, 0), to: dep(0, 0), newRS: &rsCase{name: "v3", n: 3},
			old: []rsCase{{name: "v2", n: 2}, {name: "v1", n: 1}}, want: map[string]int32{"v3": 0, "v2": 0, "v1": 0}},
		{name: "from zero: only the new ReplicaSet", from: dep(6, 0), to: dep(6, 0), newRS: &rsCase{name: "v3", n: 0},
			old: []rsCase{{name: "v2", n: 0}, {name: "v1", n: 0}}, want: map[string]int32{"v3": 6, "v2": 0, "v1": 0}, wantUpdates: ptr.To(1)},
		{name: "one ReplicaSet with a stale max-replicas", from: dep(5, 0), to: dep(5, 0), newRS: &rsCase{name: "v3", n: 2},
			old: []rsCase{{name: "v2", n: 1, desired: 3}, {name: "v1", n: 1}}, want: map[string]int32{"v3": 2, "v2": 2, "v1": 1}},
		{name: "with surge 10 -> 20", from: dep(10, 2), to: dep(20, 2), newRS: &rsCase{name: "v2", n: 6},
			old: []rsCase{{name: "v1", n: 6}}, want: map[string]int32{"v2": 11, "v1": 11}},
		{name: "surge and size change", from: dep(10, 3), to: dep(50, 6), newRS: &rsCase{name: "v2", n: 5},
			old: []rsCase{{name: "v1", n: 8}}, want: map[string]int32{"v2": 22, "v1": 34}},
		{name: "size and template change", from: dep(10, 0), to: dep(14, 0),
			old: []rsCase{{name: "v2", n: 7}, {name: "v1", n: 3}}, want: map[string]int32{"v2": 10, "v1": 4}},
		{name: "saturated new ReplicaSet: old ones go to zero", from: dep(10, 0), to: dep(10, 0), newRS: &rsCase{name: "v2", n: 10, avail: 10},
			old: []rsCase{{name: "v1", n: 2}}, want: map[string]int32{"v2": 10, "v1": 0}},
		{name: "saturated but broken new ReplicaSet leaves old pods", from: newDeployment(2, "web:new", intstr.FromInt32(1), intstr.FromInt32(1)),
			to: newDeployment(2, "web:new", intstr.FromInt32(1), intstr.FromInt32(1)), newRS: &rsCase{name: "v2", n: 2},
			old: []rsCase{{name: "v1", n: 1}}, want: map[string]int32{"v2": 2, "v1": 1}, wantUpdates: ptr.To(0)},
		{name: "8 -> 16 with 5 old and 3 new, no surge", from: newDeployment(8, "web:new", intstr.FromInt32(0), intstr.FromInt32(3)),
			to: newDeployment(16, "web:new", intstr.FromInt32(0), intstr.FromInt32(3)), newRS: &rsCase{name: "v2", n: 3},
			old: []rsCase{{name: "v1", n: 5}}, want: map[string]int32{"v2": 6, "v1": 10}},
		// max-replicas was 10 (8 + 25%) but only 8 ran: each ReplicaSet
		// grows by size*20/10, and the leftover 4 of the 12 allowed go
		// to the largest.
		{name: "8 -> 16 with 5 old and 3 new, 25% surge", from: newDeployment(8, "web:new", intstr.FromString("25%"), intstr.FromString("25%")),
			to: newDeployment(16, "web:new", intstr.FromString("25%"), intstr.FromString("25%")), newRS: &rsCase{name: "v2", n: 3},
			old: []rsCase{{name: "v1", n: 5}}, want: map[string]int32{"v2": 6, "v1": 14}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			mk := func(r rsCase) *appsv1.ReplicaSet {
				rs := ownedRS(tc.from, "web:"+r.name, r.n, 1)
				rs.Name = r.name
				desired := replicas(tc.from)
				if r.desired != 0 {
					desired = r.desired
				}
				setReplicasAnnotations(rs, desired, desired+maxSurge(tc.from))
				rs.Status = appsv1.ReplicaSetStatus{Replicas: r.n, AvailableReplicas: r.avail}
				return w.createRS(rs)
			}
			// Oldest first, so creation timestamps order them.
			var old []*appsv1.ReplicaSet
			for i := len(tc.old) - 1; i >= 0; i-- {
				old = append([]*appsv1.ReplicaSet{mk(tc.old[i])}, old...)
			}
			var newRS *appsv1.ReplicaSet
			if tc.newRS != nil {
				newRS = mk(*tc.newRS)
			}
			before := len(w.client.Actions())
			if err := w.c.scale(ctx, tc.to, newRS, old); err != nil {
				t.Fatal(err)
			}
			got := map[string]int32{}
			for _, rs := range w.rss() {
				got[rs.Name] = replicas(rs)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("sizes %v, want %v", got, tc.want)
			}
			updates := 0
			for _, a := range w.client.Actions()[before:] {
				if a.GetVerb() == "update" {
					updates++
				}
			}
			if tc.wantUpdates != nil && updates != *tc.wantUpdates {
				t.Errorf("%d ReplicaSet updates, want %d", updates, *tc.wantUpdates)
			}
		})
	}
}

func TestRecreate(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d := newDeployment(3, "web:v1", intstr.FromInt32(0), intstr.FromInt32(0))
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	w.create(d)
	w.rollout(allAvailable, nil)
	v1 := w.mustRS("web:v1")
	if replicas(v1) != 3 {
		t.Fatalf("first rollout: %s", w.describe())
	}
	var pods []*corev1.Pod
	for i := range 3 {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", v1.Name, i), Namespace: testNS,
				Labels:          map[string]string{"app": "web", PodTemplateHashLabel: v1.Labels[PodTemplateHashLabel]},
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(v1, rsKind)}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		p, err := w.client.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}

	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	w.sync()
	if got := w.sizes(); got["web:v1"] != 0 || len(got) != 1 {
		t.Fatalf("first sync: %s, want only the old ReplicaSet, scaled to 0", w.describe())
	}
	// The ReplicaSet controller counts no pods any more, but they are
	// still terminating.
	w.settle(allAvailable)
	for range 3 {
		w.sync()
		if w.rsFor("web:v2") != nil {
			t.Fatalf("new ReplicaSet created while old pods run: %s", w.describe())
		}
	}
	if rev := w.deployment().Annotations[RevisionAnnotation]; rev != "1" {
		t.Errorf("revision %q before the new ReplicaSet exists, want 1", rev)
	}
	// Two pods go, one is left failed: a finished pod does not count.
	for _, p := range pods[:2] {
		if err := w.client.CoreV1().Pods(testNS).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w.sync()
	if w.rsFor("web:v2") != nil {
		t.Fatalf("new ReplicaSet created while an old pod runs: %s", w.describe())
	}
	pods[2].Status.Phase = corev1.PodFailed
	if _, err := w.client.CoreV1().Pods(testNS).UpdateStatus(ctx, pods[2], metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.sync()
	v2 := w.mustRS("web:v2")
	if replicas(v2) != 3 || replicas(w.mustRS("web:v1")) != 0 {
		t.Fatalf("after the old pods are gone: %s, want the new ReplicaSet at 3 at once", w.describe())
	}
	w.rollout(allAvailable, nil)
	d = w.deployment()
	wantProgressing(t, d, corev1.ConditionTrue, reasonNewRSAvailable)
	if d.Annotations[RevisionAnnotation] != "2" || d.Status.AvailableReplicas != 3 || d.Status.UpdatedReplicas != 3 {
		t.Errorf("after the rollout: revision %q, status %+v", d.Annotations[RevisionAnnotation], d.Status)
	}
}

// Upstream waits only for pods of the Deployment's own ReplicaSets: a
// stray pod that happens to match the selector must not hold a Recreate
// rollout back forever.
func TestRecreateIgnoresPodsItDoesNotOwn(t *testing.T) {
	w := newWorld(t)
	d := newDeployment(2, "web:v1", intstr.FromInt32(0), intstr.FromInt32(0))
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	w.create(d)
	w.rollout(allAvailable, nil)
	stray := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "debug", Namespace: testNS, Labels: map[string]string{"app": "web"}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if _, err := w.client.CoreV1().Pods(testNS).Create(context.Background(), stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	w.rollout(allAvailable, nil)
	if got := w.sizes(); got["web:v1"] != 0 || got["web:v2"] != 2 {
		t.Fatalf("%s", w.describe())
	}
}

func TestPauseAndResume(t *testing.T) {
	w := newWorld(t)
	w.create(newDeployment(3, "web:v1", intstr.FromString("25%"), intstr.FromString("25%")))
	w.rollout(allAvailable, nil)

	w.update(func(d *appsv1.Deployment) { d.Spec.Paused = true })
	w.sync()
	wantProgressing(t, w.deployment(), corev1.ConditionUnknown, reasonPaused)

	w.update(func(d *appsv1.Deployment) { d.Spec.Template = template("web:v2") })
	w.sync()
	if len(w.rss()) != 1 {
		t.Fatalf("paused Deployment rolled out: %s", w.describe())
	}
	if d := w.deployment(); d.Status.ObservedGeneration != d.Generation || d.Status.UpdatedReplicas != 0 {
		t.Errorf("paused status %+v, generation %d: want the template change observed, no updated replicas", d.Status, d.Generation)
	}

	// Scaling while paused scales the active ReplicaSet.
	w.update(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](5) })
	w.sync()
	if got := w.sizes(); len(got) != 1 || got["web:v1"] != 5 {
		t.Fatalf("scale while paused: %s", w.describe())
	}
	w.settle(allAvailable)
	// No progress deadline runs while paused.
	w.clock.Step(time.Hour)
	w.sync()
	d := w.deployment()
	wantProgressing(t, d, corev1.ConditionUnknown, reasonPaused)
	if d.Status.Replicas != 5 || d.Status.AvailableReplicas != 5 || d.Annotations[RevisionAnnotation] != "1" {
		t.Errorf("paused status %+v, revision %q", d.Status, d.Annotations[RevisionAnnotation])
	}

	w.update(func(d *appsv1.Deployment) { d.Spec.Paused = false })
	before := len(w.client.Actions())
	w.sync()
	resumed := false
	for _, a := range w.client.Actions()[before:] {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" && a.GetResource().Resource == "deployments" {
			obj := a.(k8stesting.UpdateAction).GetObject().(*appsv1.Deployment)
			if c := progressingOf(obj); c != nil && c.Reason == reasonResumed && c.Status == corev1.ConditionUnknown {
				resumed = true
			}
		}
	}
	if !resumed {
		t.Errorf("no status update with Progressing Unknown/%s on resume", reasonResumed)
	}
	if w.rsFor("web:v2") == nil {
		t.Fatalf("resumed rollout created no new ReplicaSet: %s", w.describe())
	}
	w.rollout(allAvailable, nil)
	if got := w.sizes(); got["web:v1"] != 0 || got["web:v2"] != 5 {
		t.Fatalf("after resume: %s", w.describe())
	}
	if rev := w.deployment().Annotations[RevisionAnnotation]; rev != "2" {
		t.Errorf("revision %q, want 2", rev)
	}
}
