package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestProxySubresources reaches a pod's web server through the API
// server's pods/proxy, services/proxy and nodes/proxy subresources, with
// every name form (name, name:port, scheme:name:port) and several methods,
// and checks the errors of a service without endpoints and a bad name.
func TestProxySubresources(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: `+testServer+`
    imagePullPolicy: Never
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: empty
spec:
  selector: {app: none}
  ports: [{port: 80}]
`, "create", "-f", "-")
	waitPod(t, c, "web", 30*time.Second, "Running", func(p *corev1.Pod) bool { return allRunning(p) && p.Status.PodIP != "" })
	framework.Eventually(t, 30*time.Second, "the service's endpoint", func() bool {
		return k.Run(c, "", nil, "get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].ip}").Stdout != ""
	})
	for path, want := range map[string]string{
		"/api/v1/namespaces/default/pods/web/proxy/":                  "hello from web\n",
		"/api/v1/namespaces/default/pods/web:8080/proxy/hostname":     "web",
		"/api/v1/namespaces/default/pods/http:web:8080/proxy/port":    "8080",
		"/api/v1/namespaces/default/pods/web/proxy?path=/hostname":    "web",
		"/api/v1/namespaces/default/services/web:80/proxy/hostname":   "web",
		"/api/v1/namespaces/default/services/web:http/proxy/hostname": "web",
		"/api/v1/namespaces/default/services/http:web:80/proxy/port":  "8080",
		"/api/v1/nodes/" + framework.NodeName + "/proxy/healthz":      "ok",
	} {
		if out := k.Must(t, c, "get", "--raw", path); out != want {
			t.Errorf("GET %s = %q, want %q", path, out, want)
		}
	}
	// Other methods go through too (the test server answers any method).
	ctx := context.Background()
	rc := c.Client().CoreV1().RESTClient()
	for _, req := range map[string]func() ([]byte, error){
		"POST": func() ([]byte, error) {
			return rc.Post().AbsPath("/api/v1/namespaces/default/pods/web/proxy/hostname").DoRaw(ctx)
		},
		"PUT": func() ([]byte, error) {
			return rc.Put().AbsPath("/api/v1/namespaces/default/services/web:http/proxy/hostname").DoRaw(ctx)
		},
		"DELETE": func() ([]byte, error) {
			return rc.Delete().AbsPath("/api/v1/namespaces/default/pods/web/proxy/hostname").DoRaw(ctx)
		},
		"OPTIONS": func() ([]byte, error) {
			return rc.Verb("OPTIONS").AbsPath("/api/v1/namespaces/default/pods/web/proxy/hostname").DoRaw(ctx)
		},
	} {
		if b, err := req(); err != nil || string(b) != "web" {
			t.Errorf("proxied request = %q, %v", b, err)
		}
	}
	_, err := rc.Get().AbsPath("/api/v1/namespaces/default/services/empty/proxy/").DoRaw(ctx)
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("service without endpoints: %v", err)
	}
	_, err = rc.Get().AbsPath("/api/v1/namespaces/default/services/web:9999/proxy/").DoRaw(ctx)
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("unknown service port: %v", err)
	}
	if r := k.Run(c, "", nil, "get", "--raw", "/api/v1/namespaces/default/services/empty/proxy/"); !strings.Contains(r.Stderr, `no endpoints available for service "empty"`) {
		t.Errorf("kubectl on a service without endpoints: %s", r.Stderr)
	}
	_, err = rc.Get().AbsPath("/api/v1/namespaces/default/pods/a:b:c:d/proxy/").DoRaw(ctx)
	if !apierrors.IsBadRequest(err) {
		t.Errorf("bad pod proxy name: %v", err)
	}
	_, err = rc.Get().AbsPath("/api/v1/namespaces/default/pods/nope/proxy/").DoRaw(ctx)
	if !apierrors.IsNotFound(err) {
		t.Errorf("missing pod: %v", err)
	}
}
