package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestResourceQuota creates a pods=1 quota with kubectl: its status is
// computed, a second pod is rejected with upstream's message, kubectl get
// quota shows the usage, and a ReplicationController it holds back says so
// in a ReplicaFailure condition.
func TestResourceQuota(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	cs := c.Client()
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.Must(t, c, "create", "quota", "q", "--hard=pods=1")
	framework.Eventually(t, 15*time.Second, "quota status computed", func() bool {
		q, err := cs.CoreV1().ResourceQuotas("default").Get(context.Background(), "q", metav1.GetOptions{})
		if err != nil {
			return false
		}
		used, ok := q.Status.Used["pods"]
		return ok && used.IsZero() && q.Status.Hard.Pods().Value() == 1
	})
	k.MustIn(t, c, podManifest("p1", "default", "    app: q"), "create", "-f", "-")
	res := k.Run(c, podManifest("p2", "default", "    app: q"), nil, "create", "-f", "-")
	want := `pods "p2" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1`
	if res.Err == nil || !strings.Contains(res.Stderr, want) {
		t.Fatalf("second pod: err %v, stderr %q, want %q", res.Err, res.Stderr, want)
	}
	out := k.Must(t, c, "get", "quota", "q")
	if !strings.Contains(out, "pods: 1/1") {
		t.Fatalf("kubectl get quota:\n%s", out)
	}
	k.Must(t, c, "delete", "pod", "p1", "--wait=false")
	framework.Eventually(t, 30*time.Second, "usage released after delete", func() bool {
		return strings.Contains(k.Must(t, c, "get", "quota", "q"), "pods: 0/1")
	})
	// A ReplicationController the quota holds back surfaces a
	// ReplicaFailure condition, gone once it asks for what the quota allows.
	k.MustIn(t, c, replicaSetYAML("ReplicationController", "held", 3), "create", "-f", "-")
	cond := func() string {
		return k.Run(c, "", nil, "get", "rc", "held", "-o", `jsonpath={.status.conditions[?(@.type=="ReplicaFailure")].reason}`).Stdout
	}
	framework.Eventually(t, 30*time.Second, "ReplicaFailure FailedCreate on the held-back rc", func() bool { return cond() == "FailedCreate" })
	k.Must(t, c, "scale", "rc", "held", "--replicas=1")
	framework.Eventually(t, 30*time.Second, "ReplicaFailure gone after scaling to the quota", func() bool { return cond() == "" })
}

// TestLimitRange defaults a pod's requests and limits from a LimitRange and
// rejects a pod above its max.
func TestLimitRange(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	cs := c.Client()
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, `apiVersion: v1
kind: LimitRange
metadata:
  name: lr
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m, memory: 64Mi}
    max: {cpu: "1"}
`, "create", "-f", "-")
	k.MustIn(t, c, podManifest("lp", "default", "    app: lr"), "create", "-f", "-")
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), "lp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Spec.Containers[0].Resources
	if r.Requests.Cpu().String() != "100m" || r.Requests.Memory().String() != "64Mi" || r.Limits.Cpu().String() != "500m" || r.Limits.Memory().String() != "256Mi" {
		t.Fatalf("defaulted resources: %+v", r)
	}
	big := strings.Replace(podManifest("big", "default", "    app: lr"), "  - name: main\n", "  - name: main\n    resources: {limits: {cpu: \"2\"}}\n", 1)
	res := k.Run(c, big, nil, "create", "-f", "-")
	want := `pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2`
	if res.Err == nil || !strings.Contains(res.Stderr, want) {
		t.Fatalf("pod above max: err %v, stderr %q, want %q", res.Err, res.Stderr, want)
	}
}
