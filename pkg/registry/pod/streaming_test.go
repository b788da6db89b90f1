package pod_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/server/servertest"
)

// TestStreamingSubresourceErrors checks the Status a streaming request
// gets before it reaches a kubelet: upstream's codes and messages, so
// kubectl prints them as it prints Kubernetes' own.
func TestStreamingSubresourceErrors(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	pods := srv.Client.CoreV1().Pods("default")
	two := basic("two")
	two.Spec.Containers = append(two.Spec.Containers, corev1.Container{Name: "side", Image: "example/side:v1"})
	bound := basic("bound")
	bound.Spec.NodeName = "no-such-node"
	for _, p := range []*corev1.Pod{basic("unbound"), two, bound} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		pod, sub string
		params   map[string]string
		code     int
		message  string
	}{
		{"missing", "exec", map[string]string{"command": "true", "stdout": "true"}, http.StatusNotFound, `pods "missing" not found`},
		{"unbound", "exec", map[string]string{"command": "true", "stdout": "true"}, http.StatusBadRequest, "pod unbound does not have a host assigned"},
		{"unbound", "exec", map[string]string{"command": "true", "container": "nope"}, http.StatusBadRequest, "container nope is not valid for pod unbound"},
		{"two", "attach", map[string]string{"stdout": "true"}, http.StatusBadRequest, "a container name must be specified for pod two, choose one of: [app side]"},
		{"bound", "exec", map[string]string{"stdout": "true"}, http.StatusBadRequest, "you must specify a command"},
		{"bound", "exec", map[string]string{"command": "true", "stdout": "maybe"}, http.StatusBadRequest, "stdout"},
		{"unbound", "portforward", map[string]string{"ports": "http"}, http.StatusBadRequest, `invalid port "http"`},
		{"bound", "portforward", nil, http.StatusServiceUnavailable, `node "no-such-node"`},
		{"bound", "attach", map[string]string{"stdout": "true"}, http.StatusServiceUnavailable, `node "no-such-node"`},
	} {
		for _, method := range []string{"GET", "POST"} {
			req := srv.Client.CoreV1().RESTClient().Verb(method).Namespace("default").Resource("pods").Name(tc.pod).SubResource(tc.sub)
			for k, v := range tc.params {
				req = req.Param(k, v)
			}
			err := req.Do(ctx).Error()
			var st apierrors.APIStatus
			if !errors.As(err, &st) || int(st.Status().Code) != tc.code || !strings.Contains(st.Status().Message, tc.message) {
				t.Errorf("%s %s/%s %v: got %v, want %d %q", method, tc.pod, tc.sub, tc.params, err, tc.code, tc.message)
			}
		}
	}
}
