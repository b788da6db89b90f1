package quota

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func pod(req, lim corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "a", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}},
		{Name: "b", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}},
	}}}
}

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func TestPodUsage(t *testing.T) {
	p := pod(rl("cpu", "100m", "memory", "1Mi"), rl("cpu", "200m"))
	got := Usage(schema.GroupResource{Resource: "pods"}, p)
	want := rl("pods", "1", "count/pods", "1", "cpu", "200m", "requests.cpu", "200m",
		"memory", "2Mi", "requests.memory", "2Mi", "limits.cpu", "400m")
	if Format(got) != Format(want) {
		t.Fatalf("usage %s, want %s", Format(got), Format(want))
	}
	p.Status.Phase = corev1.PodSucceeded
	if got := Format(Usage(schema.GroupResource{Resource: "pods"}, p)); got != "count/pods=1" {
		t.Fatalf("terminal pod usage %s", got)
	}
}

func TestServiceAndCountUsage(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 1}, {Port: 2}}}}
	got := Format(Usage(schema.GroupResource{Resource: "services"}, svc))
	if got != "count/services=1,services.loadbalancers=1,services.nodeports=2,services=1" {
		t.Fatalf("service usage %s", got)
	}
	if got := Format(Usage(schema.GroupResource{Group: "apps", Resource: "deployments"}, nil)); got != "count/deployments.apps=1" {
		t.Fatalf("deployment usage %s", got)
	}
}

func TestScopes(t *testing.T) {
	best := pod(nil, nil)
	burst := pod(rl("cpu", "1"), nil)
	deadline := int64(10)
	term := pod(nil, nil)
	term.Spec.ActiveDeadlineSeconds = &deadline
	q := func(s ...corev1.ResourceQuotaScope) *corev1.ResourceQuota {
		return &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Scopes: s}}
	}
	for _, c := range []struct {
		q    *corev1.ResourceQuota
		p    *corev1.Pod
		want bool
	}{
		{q(corev1.ResourceQuotaScopeBestEffort), best, true},
		{q(corev1.ResourceQuotaScopeBestEffort), burst, false},
		{q(corev1.ResourceQuotaScopeNotBestEffort), burst, true},
		{q(corev1.ResourceQuotaScopeTerminating), term, true},
		{q(corev1.ResourceQuotaScopeTerminating), best, false},
		{q(corev1.ResourceQuotaScopeNotTerminating), best, true},
		{q(corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeBestEffort), term, false},
	} {
		if got := Matches(c.q, c.p); got != c.want {
			t.Errorf("scopes %v on %+v: %v, want %v", c.q.Spec.Scopes, c.p.Spec, got, c.want)
		}
	}
	if Matches(q(corev1.ResourceQuotaScopeBestEffort), &corev1.Secret{}) {
		t.Error("scoped quota matched a secret")
	}
}
