package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestRolloutBehindAServiceLosesNoRequest rolls a Deployment of test
// servers (readiness probe on /healthz, serving 2 s after SIGTERM) from v1
// to v2 while clients on the node keep sending requests through its
// Service: every request is answered, by v1 or v2 only. A v3 whose
// readiness probe never passes stalls (progress deadline exceeded) with
// v2 still answering everything.
func TestRolloutBehindAServiceLosesNoRequest(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	k.MustIn(t, c, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  progressDeadlineSeconds: 10
  strategy:
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: `+testServer+`
        imagePullPolicy: Never
        env:
        - name: VERSION
          value: v1
        - name: SHUTDOWN_DELAY
          value: 2s
        readinessProbe:
          httpGet:
            path: /healthz
            port: 8080
          periodSeconds: 1
`, "create", "-f", "-")
	k.Must(t, c, "expose", "deployment", "web", "--port=80", "--target-port=8080")
	k.Must(t, c, "rollout", "status", "deployment", "web", "--timeout=60s")
	svc, err := c.Client().CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + svc.Spec.ClusterIP + "/env?name=VERSION"
	framework.Eventually(t, 10*time.Second, "web answering through its service", func() bool {
		body, err := get(url)
		return err == nil && body == "v1"
	})

	// clients sends requests until stopped and counts the answers.
	clients := func() (stop func() (map[string]int, []error)) {
		var mu sync.Mutex
		answers := map[string]int{}
		var errs []error
		done := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					body, err := get(url)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						answers[body]++
					}
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		return func() (map[string]int, []error) {
			close(done)
			wg.Wait()
			return answers, errs
		}
	}

	stop := clients()
	k.Must(t, c, "set", "env", "deployment/web", "VERSION=v2")
	k.Must(t, c, "rollout", "status", "deployment", "web", "--timeout=90s")
	time.Sleep(500 * time.Millisecond)
	answers, errs := stop()
	t.Logf("during v1 -> v2: %v, %d failed", answers, len(errs))
	if len(errs) > 0 {
		t.Errorf("%d requests failed during the rollout, first: %v", len(errs), errs[0])
	}
	if len(answers) != 2 || answers["v1"] == 0 || answers["v2"] == 0 {
		t.Errorf("answers during the rollout: %v, want v1 and v2 only", answers)
	}

	// v3 never gets ready: the rollout stalls and v2 keeps answering.
	stop = clients()
	k.Must(t, c, "patch", "deployment", "web", "--type=json", "-p",
		`[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"v3"},`+
			`{"op":"replace","path":"/spec/template/spec/containers/0/readinessProbe/httpGet/port","value":9999}]`)
	r := k.Run(c, "", nil, "rollout", "status", "deployment", "web", "--timeout=60s")
	answers, errs = stop()
	t.Logf("while v3 is stuck: %v, %d failed", answers, len(errs))
	if r.Err == nil || !strings.Contains(r.Stderr, "exceeded its progress deadline") {
		t.Errorf("rollout status of the stuck v3: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
	}
	if len(errs) > 0 {
		t.Errorf("%d requests failed while v3 was stuck, first: %v", len(errs), errs[0])
	}
	if len(answers) != 1 || answers["v2"] == 0 {
		t.Errorf("answers while v3 is stuck: %v, want v2 only", answers)
	}
	if out := k.Must(t, c, "get", "pods", "-l", "app=web"); !strings.Contains(out, "0/1") {
		t.Errorf("the v3 pod is not shown unready:\n%s", out)
	}
}
