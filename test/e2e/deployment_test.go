package e2e

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

const kubiaDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: kubia
spec:
  replicas: 3
  selector:
    matchLabels:
      app: kubia
  template:
    metadata:
      name: kubia
      labels:
        app: kubia
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - image: registry.local/kubia:v1
        name: nodejs
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
`

func kubiaReplicaSets(t *testing.T, c *framework.Cluster) []appsv1.ReplicaSet {
	t.Helper()
	l, err := c.Client().AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=kubia"})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// watchPods samples the kubia pods that are not being deleted until the
// returned function is called, and returns the most seen at once.
func watchPods(t *testing.T, c *framework.Cluster) func() int {
	var most atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			l, err := c.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=kubia"})
			if err != nil {
				continue
			}
			n := 0
			var names []string
			for _, p := range l.Items {
				if p.DeletionTimestamp == nil {
					n++
					names = append(names, p.Name+"/"+string(p.Status.Phase))
				}
			}
			if int64(n) > most.Load() {
				most.Store(int64(n))
				t.Logf("%d pods at once: %v", n, names)
			}
		}
	}()
	return func() int {
		close(stop)
		wg.Wait()
		return int(most.Load())
	}
}

// TestDeploymentRollouts follows the book's Deployment chapter on a real
// node with kubectl: create --record, rollout status, set image rolling
// v1 to v2 within maxSurge, a v3 that never becomes available stalls and
// fails its progress deadline, rollout undo, history with change causes,
// pause/resume, restart, scale, and deletion.
func TestDeploymentRollouts(t *testing.T) {
	c := nodeClusterWith(t, []string{"registry.local/kubia:v1", "registry.local/kubia:v2"})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	status := func(timeout string) framework.Result {
		return k.Run(c, "", nil, "rollout", "status", "deployment", "kubia", "--timeout="+timeout)
	}
	mustRollOut := func(what string) {
		t.Helper()
		r := status("90s")
		if r.Err != nil || !strings.Contains(r.Stdout, "successfully rolled out") {
			t.Fatalf("%s: rollout status: %v\n%s\n%s", what, r.Err, r.Stdout, r.Stderr)
		}
	}
	images := func() map[string]int {
		out := map[string]int{}
		for _, p := range podsLabelled(t, c, "kubia") {
			out[p.Spec.Containers[0].Image]++
		}
		return out
	}

	k.MustIn(t, c, kubiaDeployment, "create", "-f", "-", "--record")
	mustRollOut("v1")
	if n := images()["registry.local/kubia:v1"]; n != 3 {
		t.Fatalf("v1 pods: %v", images())
	}
	rss := kubiaReplicaSets(t, c)
	if len(rss) != 1 || !strings.HasPrefix(rss[0].Name, "kubia-") || rss[0].Labels["pod-template-hash"] == "" {
		t.Fatalf("replica sets after create: %+v", rss)
	}

	// v1 -> v2: a second ReplicaSet takes over within maxSurge (25% of 3
	// rounds up to 1) and maxUnavailable (rounds down to 0).
	most := watchPods(t, c)
	k.Must(t, c, "set", "image", "deployment", "kubia", "nodejs=registry.local/kubia:v2", "--record")
	mustRollOut("v2")
	if m := most(); m > 4 {
		t.Errorf("%d pods at once during the rollout; replicas 3 + maxSurge 1 allow 4", m)
	}
	framework.Eventually(t, 30*time.Second, "only v2 pods", func() bool {
		im := images()
		return len(im) == 1 && im["registry.local/kubia:v2"] == 3
	})
	rss = kubiaReplicaSets(t, c)
	if len(rss) != 2 {
		t.Fatalf("%d replica sets after v2, want 2", len(rss))
	}
	for _, rs := range rss {
		want := int32(0)
		if rs.Spec.Template.Spec.Containers[0].Image == "registry.local/kubia:v2" {
			want = 3
		}
		if *rs.Spec.Replicas != want {
			t.Errorf("replica set %s (%s) has %d replicas, want %d", rs.Name, rs.Spec.Template.Spec.Containers[0].Image, *rs.Spec.Replicas, want)
		}
	}
	out := k.Must(t, c, "describe", "deployment", "kubia")
	for _, want := range []string{"ScalingReplicaSet", "NewReplicaSetAvailable", "MinimumReplicasAvailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe deployment lacks %q:\n%s", want, out)
		}
	}

	// v3 never becomes available (its image cannot be pulled): the
	// rollout stalls with the v2 pods serving and fails its deadline.
	k.Must(t, c, "patch", "deployment", "kubia", "-p", `{"spec":{"progressDeadlineSeconds":5}}`)
	k.Must(t, c, "set", "image", "deployment", "kubia", "nodejs=registry.local/kubia:v3", "--record")
	r := status("60s")
	if r.Err == nil || !strings.Contains(r.Stderr, "exceeded its progress deadline") {
		t.Fatalf("rollout status of the stuck v3: %v\n%s\n%s", r.Err, r.Stdout, r.Stderr)
	}
	if got := k.Must(t, c, "get", "deployment", "kubia", "-o", "jsonpath={.status.conditions[?(@.type=='Progressing')].reason}"); got != "ProgressDeadlineExceeded" {
		t.Errorf("Progressing reason %q", got)
	}
	if n := images()["registry.local/kubia:v2"]; n != 3 {
		t.Errorf("v2 pods while v3 is stuck: %v", images())
	}
	k.Must(t, c, "rollout", "undo", "deployment", "kubia")
	mustRollOut("undo to v2")
	framework.Eventually(t, 30*time.Second, "v3 pod gone after undo", func() bool {
		im := images()
		return len(im) == 1 && im["registry.local/kubia:v2"] == 3
	})

	hist := k.Must(t, c, "rollout", "history", "deployment", "kubia")
	for _, want := range []string{"kubectl create", "nodejs=registry.local/kubia:v3"} {
		if !strings.Contains(hist, want) {
			t.Errorf("rollout history lacks %q:\n%s", want, hist)
		}
	}
	if rev := k.Must(t, c, "rollout", "history", "deployment", "kubia", "--revision=3"); !strings.Contains(rev, "registry.local/kubia:v3") {
		t.Errorf("rollout history --revision=3:\n%s", rev)
	}
	if got := k.Must(t, c, "get", "deployment", "kubia", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"); got != "4" {
		t.Errorf("revision after undo %q, want 4", got)
	}

	// Paused: template changes wait; resumed: they roll out.
	k.Must(t, c, "rollout", "pause", "deployment", "kubia")
	k.Must(t, c, "set", "image", "deployment", "kubia", "nodejs=registry.local/kubia:v1")
	time.Sleep(2 * time.Second)
	if im := images(); im["registry.local/kubia:v1"] != 0 {
		t.Fatalf("a paused deployment rolled out: %v", im)
	}
	k.Must(t, c, "rollout", "resume", "deployment", "kubia")
	mustRollOut("resume to v1")
	framework.Eventually(t, 30*time.Second, "v1 pods after resume", func() bool { return images()["registry.local/kubia:v1"] == 3 })

	// restart rolls every pod; scale resizes.
	before := map[string]bool{}
	for _, p := range podsLabelled(t, c, "kubia") {
		before[p.Name] = true
	}
	k.Must(t, c, "rollout", "restart", "deployment", "kubia")
	mustRollOut("restart")
	framework.Eventually(t, 30*time.Second, "every pod replaced by the restart", func() bool {
		ps := podsLabelled(t, c, "kubia")
		for _, p := range ps {
			if before[p.Name] {
				return false
			}
		}
		return len(ps) == 3
	})
	k.Must(t, c, "scale", "deployment", "kubia", "--replicas=5")
	mustRollOut("scale to 5")
	if n := len(podsLabelled(t, c, "kubia")); n != 5 {
		t.Errorf("%d pods after scale to 5", n)
	}
	if out := k.Must(t, c, "get", "deployment", "kubia"); !strings.Contains(out, "5/5") {
		t.Errorf("get deployment:\n%s", out)
	}

	// Back to a named revision: 4 is v2 (revision 2 moved to 4 with the
	// first undo).
	k.Must(t, c, "rollout", "undo", "deployment", "kubia", "--to-revision=4")
	mustRollOut("undo to revision 4")
	framework.Eventually(t, 30*time.Second, "v2 pods after undo --to-revision, the others gone", func() bool {
		l, err := c.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=kubia"})
		if err != nil || len(l.Items) != 5 {
			return false
		}
		for _, p := range l.Items {
			if p.Spec.Containers[0].Image != "registry.local/kubia:v2" {
				return false
			}
		}
		return true
	})

	// Recreate: no v1 pod runs while a v2 pod is still there.
	k.Must(t, c, "patch", "deployment", "kubia", "--type=merge", "-p", `{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`)
	mixed := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		seen := false
		for {
			select {
			case <-done:
				mixed <- seen
				return
			case <-time.After(50 * time.Millisecond):
			}
			l, err := c.Client().CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=kubia"})
			if err != nil {
				continue
			}
			var v1Running, v2Left bool
			for _, p := range l.Items {
				switch {
				case p.Spec.Containers[0].Image == "registry.local/kubia:v1" && p.Status.Phase == "Running" && p.DeletionTimestamp == nil:
					v1Running = true
				case p.Spec.Containers[0].Image == "registry.local/kubia:v2" && p.Status.Phase != "Succeeded" && p.Status.Phase != "Failed":
					v2Left = true
				}
			}
			seen = seen || (v1Running && v2Left)
		}
	}()
	k.Must(t, c, "set", "image", "deployment", "kubia", "nodejs=registry.local/kubia:v1")
	mustRollOut("recreate to v1")
	framework.Eventually(t, 30*time.Second, "v1 pods after recreate", func() bool { return images()["registry.local/kubia:v1"] == 5 })
	close(done)
	if <-mixed {
		t.Error("Recreate ran a v1 pod while a v2 pod was still there")
	}

	k.Must(t, c, "delete", "deployment", "kubia")
	framework.Eventually(t, 30*time.Second, "replica sets and pods gone", func() bool {
		return len(kubiaReplicaSets(t, c)) == 0 && len(podsLabelled(t, c, "kubia")) == 0
	})
}
