package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/test/e2e/framework"
)

const statefulAlias = "registry.local/busybox:e2e-v2"

// statefulSetYAML is the book's StatefulSet: a governing headless
// service and three pods, each keeping its name in a claim of the
// default class; a pod is Ready while /tmp/ready exists.
const statefulSetYAML = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {name: http, port: 80}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: ` + busybox + `
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "[ -f /data/name ] || hostname > /data/name; hostname -f >> /data/boots; touch /tmp/ready; exec sleep 100000"]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
        volumeMounts:
        - {name: www, mountPath: /data}
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
`

// podLog watches the namespace's pods and records, in order, when each
// pod of the set appeared and was marked for deletion, and checks that a
// pod never appears before its predecessors are Ready (ordered) and that
// no two pods of one name are alive at once.
type podLog struct {
	mu     sync.Mutex
	ready  map[string]bool
	uids   map[string]string
	events []string
	errs   []string
}

func watchSet(t *testing.T, c *framework.Cluster) *podLog {
	l := &podLog{ready: map[string]bool{}, uids: map[string]string{}}
	w, err := c.Client().CoreV1().Pods("default").Watch(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			l.observe(ev.Type, p)
		}
	}()
	return l
}

func (l *podLog) observe(typ watch.EventType, p *corev1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case typ == watch.Added:
		if old, ok := l.uids[p.Name]; ok && old != string(p.UID) {
			l.errs = append(l.errs, fmt.Sprintf("%s created while its predecessor %s still existed", p.Name, old))
		}
		var ord int
		fmt.Sscanf(strings.TrimPrefix(p.Name, "web-"), "%d", &ord)
		for i := range ord {
			if !l.ready[fmt.Sprintf("web-%d", i)] {
				l.errs = append(l.errs, fmt.Sprintf("%s created before web-%d was Ready", p.Name, i))
			}
		}
		l.uids[p.Name] = string(p.UID)
		l.events = append(l.events, "create "+p.Name)
	case typ == watch.Deleted:
		delete(l.uids, p.Name)
		delete(l.ready, p.Name)
		l.events = append(l.events, "gone "+p.Name)
		return
	case p.DeletionTimestamp != nil:
		if l.ready[p.Name] || !slices.Contains(l.events, "delete "+p.Name+" "+string(p.UID)) {
			l.events = append(l.events, "delete "+p.Name+" "+string(p.UID))
		}
		l.ready[p.Name] = false
		return
	}
	l.ready[p.Name] = podReady(p)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
		}
	}
	return false
}

// deletions is the order in which pods were marked for deletion.
func (l *podLog) deletions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if f := strings.Fields(e); f[0] == "delete" && !slices.Contains(out, f[1]) {
			out = append(out, f[1])
		}
	}
	return out
}

func (l *podLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = nil
}

func (l *podLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		t.Error(e)
	}
	l.errs = nil
}

// TestStatefulSet is the book's example: ordered start, stable names,
// claims and DNS names across a deleted pod and a scale-down and up, a
// scale-down held while a pod is unready, and a rolling update from the
// highest ordinal that honours its partition and can be undone.
func TestStatefulSet(t *testing.T) {
	c := nodeClusterWith(t, []string{statefulAlias})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	pods := c.Client().CoreV1().Pods("default")
	log := watchSet(t, c)
	k.MustIn(t, c, statefulSetYAML, "apply", "-f", "-")
	k.Must(t, c, "rollout", "status", "sts/web", "--timeout=120s")
	log.check(t)
	name := func(pod string) string {
		return strings.TrimSpace(k.Must(t, c, "exec", pod, "--", "cat", "/data/name"))
	}
	for i := range 3 {
		pod := fmt.Sprintf("web-%d", i)
		if got := name(pod); got != pod {
			t.Errorf("%s's volume holds %q", pod, got)
		}
		if fqdn := strings.TrimSpace(k.Must(t, c, "exec", pod, "--", "hostname", "-f")); fqdn != pod+".web.default.svc.cluster.local" {
			t.Errorf("%s's FQDN is %q", pod, fqdn)
		}
	}
	out := k.Must(t, c, "get", "pvc")
	for i := range 3 {
		if !strings.Contains(out, fmt.Sprintf("www-web-%d", i)) || strings.Count(out, "Bound") != 3 {
			t.Fatalf("claims:\n%s", out)
		}
	}

	// A deleted pod comes back with its name, data and DNS name.
	old, err := pods.Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.Must(t, c, "delete", "pod", "web-1", "--wait=false")
	var web1 *corev1.Pod
	framework.Eventually(t, 60*time.Second, "web-1 back and Ready", func() bool {
		p, err := pods.Get(ctx, "web-1", metav1.GetOptions{})
		web1 = p
		return err == nil && p.UID != old.UID && podReady(p)
	})
	if got := name("web-1"); got != "web-1" {
		t.Fatalf("new web-1's volume holds %q", got)
	}
	if boots := k.Must(t, c, "exec", "web-1", "--", "cat", "/data/boots"); strings.Count(boots, "\n") != 2 {
		t.Fatalf("web-1's boots: %q", boots)
	}
	framework.Eventually(t, 30*time.Second, "web-1.web resolving to the new pod", func() bool {
		out := k.Run(c, "", nil, "exec", "web-0", "--", "nslookup", "web-1.web.default.svc.cluster.local").Stdout
		return strings.Contains(out, web1.Status.PodIP)
	})
	srv := k.Must(t, c, "exec", "web-0", "--", "nslookup", "-type=SRV", "_http._tcp.web.default.svc.cluster.local")
	for i := range 3 {
		if !strings.Contains(srv, fmt.Sprintf("web-%d.web.default.svc.cluster.local", i)) {
			t.Errorf("SRV lacks web-%d:\n%s", i, srv)
		}
	}
	log.check(t)

	// Scale down from the highest ordinal, keeping the claims; back up,
	// the same claims and data.
	log.reset()
	k.Must(t, c, "scale", "sts/web", "--replicas=1")
	framework.Eventually(t, 60*time.Second, "scaled to 1", func() bool {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		return err == nil && len(l.Items) == 1
	})
	if d := log.deletions(); !slices.Equal(d, []string{"web-2", "web-1"}) {
		t.Fatalf("scale-down deleted %v, want web-2 then web-1", d)
	}
	for _, claim := range []string{"www-web-1", "www-web-2"} {
		if _, err := c.Client().CoreV1().PersistentVolumeClaims("default").Get(ctx, claim, metav1.GetOptions{}); err != nil {
			t.Fatalf("claim %s after scale-down: %v", claim, err)
		}
	}
	k.Must(t, c, "scale", "sts/web", "--replicas=3")
	k.Must(t, c, "rollout", "status", "sts/web", "--timeout=120s")
	for _, pod := range []string{"web-1", "web-2"} {
		if got := name(pod); got != pod {
			t.Fatalf("%s after scale-up holds %q", pod, got)
		}
	}
	log.check(t)

	// No scale-down step while a pod is unready.
	log.reset()
	k.Must(t, c, "exec", "web-0", "--", "rm", "/tmp/ready")
	framework.Eventually(t, 20*time.Second, "web-0 unready", func() bool {
		p, err := pods.Get(ctx, "web-0", metav1.GetOptions{})
		return err == nil && !podReady(p)
	})
	k.Must(t, c, "scale", "sts/web", "--replicas=2")
	time.Sleep(3 * time.Second)
	if d := log.deletions(); len(d) != 0 {
		t.Fatalf("scaled down %v while web-0 was unready", d)
	}
	k.Must(t, c, "exec", "web-0", "--", "touch", "/tmp/ready")
	framework.Eventually(t, 30*time.Second, "web-2 gone once web-0 is Ready", func() bool {
		_, err := pods.Get(ctx, "web-2", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	k.Must(t, c, "scale", "sts/web", "--replicas=3")
	k.Must(t, c, "rollout", "status", "sts/web", "--timeout=120s")

	// A rolling update: partition 1 keeps web-0; then all, highest first.
	log.reset()
	k.Must(t, c, "patch", "sts/web", "-p", `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}`)
	k.Must(t, c, "set", "image", "sts/web", "main="+statefulAlias)
	image := func(pod string) string {
		p, err := pods.Get(ctx, pod, metav1.GetOptions{})
		if err != nil || !podReady(p) {
			return ""
		}
		return p.Spec.Containers[0].Image
	}
	framework.Eventually(t, 90*time.Second, "web-2 and web-1 updated", func() bool {
		return image("web-2") == statefulAlias && image("web-1") == statefulAlias
	})
	time.Sleep(2 * time.Second)
	if img := image("web-0"); img != busybox {
		t.Fatalf("web-0 below the partition runs %q", img)
	}
	k.Must(t, c, "patch", "sts/web", "-p", `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`)
	k.Must(t, c, "rollout", "status", "sts/web", "--timeout=120s")
	if d := log.deletions(); !slices.Equal(d, []string{"web-2", "web-1", "web-0"}) {
		t.Fatalf("rolling update deleted %v, want web-2, web-1, web-0", d)
	}
	if hist := k.Must(t, c, "rollout", "history", "sts/web"); !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") {
		t.Fatalf("rollout history:\n%s", hist)
	}
	k.Must(t, c, "rollout", "undo", "sts/web")
	k.Must(t, c, "rollout", "status", "sts/web", "--timeout=120s")
	for i := range 3 {
		if img := image(fmt.Sprintf("web-%d", i)); img != busybox {
			t.Errorf("web-%d after undo runs %q", i, img)
		}
	}
	log.check(t)
	if out := k.Must(t, c, "describe", "sts", "web"); !strings.Contains(out, "create Pod web-0 in StatefulSet web successful") || !strings.Contains(out, "create Claim www-web-0 Pod web-0 in StatefulSet web success") {
		t.Errorf("describe sts lacks the events:\n%s", out)
	}
}
