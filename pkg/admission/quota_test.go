package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/limitrange"
	"github.com/skiff/skiff/pkg/registry/pod"
	"github.com/skiff/skiff/pkg/registry/resourcequota"
	"github.com/skiff/skiff/pkg/storage/storagetest"
)

func stores(t *testing.T) (quotas, ranges *registry.Store) {
	st, _ := storagetest.NewStore(t)
	return registry.NewStore(resourcequota.NewResource(), st), registry.NewStore(limitrange.NewResource(), st)
}

func podAttrs(name string, p *corev1.Pod) *registry.Attributes {
	p.Name, p.Namespace = name, "ns"
	return &registry.Attributes{Operation: registry.Create, Resource: pod.NewResource(), Namespace: "ns", Name: name, Object: p}
}

func testPod(req, lim corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i",
		Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}}}}
}

func TestResourceQuotaAdmission(t *testing.T) {
	ctx := context.Background()
	quotas, _ := stores(t)
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"pods": resource.MustParse("2"), "requests.cpu": resource.MustParse("1")}}}
	if _, err := quotas.Create(ctx, "ns", q, registry.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	adm := ResourceQuota{Quotas: func() *registry.Store { return quotas }}
	cpu := corev1.ResourceList{"cpu": resource.MustParse("300m")}
	err := adm.Admit(ctx, podAttrs("p0", testPod(cpu, nil)))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "status unknown for quota: q") {
		t.Fatalf("before status: %v", err)
	}
	_, _, err = quotas.Update(ctx, "ns", "q", func(_ context.Context, old runtime.Object) (runtime.Object, error) {
		cur := old.(*corev1.ResourceQuota).DeepCopy()
		cur.Status.Hard = cur.Spec.Hard
		cur.Status.Used = corev1.ResourceList{"pods": resource.MustParse("0"), "requests.cpu": resource.MustParse("0")}
		return cur, nil
	}, registry.UpdateOptions{Subresource: "status"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p1", "p2"} {
		if err := adm.Admit(ctx, podAttrs(name, testPod(cpu, nil))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	err = adm.Admit(ctx, podAttrs("p3", testPod(cpu, nil)))
	want := `pods "p3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("third pod: %v, want %s", err, want)
	}
	obj, err := quotas.Get(ctx, "ns", "q", &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	used := obj.(*corev1.ResourceQuota).Status.Used
	if used.Pods().String() != "2" || used.Name("requests.cpu", resource.DecimalSI).String() != "600m" {
		t.Fatalf("charged usage %v", used)
	}
	// Objects the quota does not limit pass.
	sec := &registry.Attributes{Operation: registry.Create, Resource: resourcequota.NewResource(), Namespace: "ns", Name: "x", Object: &corev1.ResourceQuota{}}
	if err := adm.Admit(ctx, sec); err != nil {
		t.Fatalf("unlimited kind: %v", err)
	}
}

func TestLimitRangerAdmission(t *testing.T) {
	ctx := context.Background()
	_, ranges := stores(t)
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "lr", Namespace: "ns"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type:                 corev1.LimitTypeContainer,
		Default:              corev1.ResourceList{"cpu": resource.MustParse("500m")},
		DefaultRequest:       corev1.ResourceList{"cpu": resource.MustParse("100m")},
		Min:                  corev1.ResourceList{"cpu": resource.MustParse("50m")},
		Max:                  corev1.ResourceList{"cpu": resource.MustParse("1"), "memory": resource.MustParse("1Gi")},
		MaxLimitRequestRatio: corev1.ResourceList{"cpu": resource.MustParse("5")},
	}}}}
	if _, err := ranges.Create(ctx, "ns", lr, registry.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	adm := LimitRanger{LimitRanges: func() *registry.Store { return ranges }}
	p := testPod(nil, nil)
	if err := adm.Admit(ctx, podAttrs("d", p)); err != nil {
		t.Fatal(err)
	}
	r := p.Spec.Containers[0].Resources
	if r.Requests.Cpu().String() != "100m" || r.Limits.Cpu().String() != "500m" || r.Limits.Memory().String() != "1Gi" || r.Requests.Memory().String() != "1Gi" {
		t.Fatalf("defaults: %+v", r)
	}
	for _, c := range []struct {
		req, lim corev1.ResourceList
		want     string
	}{
		{corev1.ResourceList{"cpu": resource.MustParse("10m")}, corev1.ResourceList{"cpu": resource.MustParse("40m")},
			"minimum cpu usage per Container is 50m, but request is 10m"},
		{nil, corev1.ResourceList{"cpu": resource.MustParse("2")},
			"maximum cpu usage per Container is 1, but limit is 2"},
		{corev1.ResourceList{"cpu": resource.MustParse("100m")}, corev1.ResourceList{"cpu": resource.MustParse("1")},
			"cpu max limit to request ratio per Container is 5, but provided ratio is 10.000000"},
		// A request above max is refused even though the defaulted
		// limit is within it (the conformance LimitRange spec).
		{corev1.ResourceList{"cpu": resource.MustParse("1500m")}, nil,
			"maximum cpu usage per Container is 1, but request is 1500m"},
	} {
		err := adm.Admit(ctx, podAttrs("bad", testPod(c.req, c.lim)))
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("req %v lim %v: %v, want %q", c.req, c.lim, err, c.want)
		}
	}
}

// TestLimitRangerDefaultsAreValidated creates pods through a pods store
// with LimitRanger: a limit it defaults below the pod's own request makes
// the pod invalid (422, as upstream, where mutating admission runs
// before validation), not stored.
func TestLimitRangerDefaultsAreValidated(t *testing.T) {
	ctx := context.Background()
	st, _ := storagetest.NewStore(t)
	ranges := registry.NewStore(limitrange.NewResource(), st)
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "lr", Namespace: "ns"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type:    corev1.LimitTypeContainer,
		Default: corev1.ResourceList{"cpu": resource.MustParse("500m")},
		Max:     corev1.ResourceList{"cpu": resource.MustParse("1")},
	}}}}
	if _, err := ranges.Create(ctx, "ns", lr, registry.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := registry.NewStore(pod.NewResource(), st, LimitRanger{LimitRanges: func() *registry.Store { return ranges }})
	p := testPod(corev1.ResourceList{"cpu": resource.MustParse("800m")}, nil)
	p.Name = "greedy"
	_, err := pods.Create(ctx, "ns", p, registry.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "must be less than or equal to cpu limit") {
		t.Fatalf("create: %v, want Invalid: request above the defaulted limit", err)
	}
	p = testPod(corev1.ResourceList{"cpu": resource.MustParse("200m")}, nil)
	p.Name = "fine"
	got, err := pods.Create(ctx, "ns", p, registry.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lim := got.(*corev1.Pod).Spec.Containers[0].Resources.Limits.Cpu().String(); lim != "500m" {
		t.Fatalf("defaulted limit %s, want 500m", lim)
	}
}
