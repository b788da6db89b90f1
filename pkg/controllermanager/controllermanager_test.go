package controllermanager_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controllermanager"
	"github.com/skiff/skiff/pkg/server/servertest"
)

// runCM runs a controller manager against srv until the returned function
// stops it (as a kill would: nothing is handed over).
func runCM(t *testing.T, srv *servertest.Server) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = controllermanager.Run(ctx, srv.Config, srv.Config.CAData, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("controller manager did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

func activePods(t *testing.T, srv *servertest.Server, owner types.UID) int {
	t.Helper()
	l, err := srv.Client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return -1 // the server may be restarting
	}
	n := 0
	for _, p := range l.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == owner && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExactly waits for n pods and checks they stay n (no late extras).
func waitExactly(t *testing.T, srv *servertest.Server, owner types.UID, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d pods", n), func() bool { return activePods(t, srv, owner) == n })
	for range 10 {
		time.Sleep(200 * time.Millisecond)
		if got := activePods(t, srv, owner); got != n {
			t.Fatalf("%d pods after converging, want exactly %d", got, n)
		}
	}
}

// TestControllersConvergeAcrossRestarts scales a ReplicaSet up while the
// API server restarts under the controller manager, then while the
// controller manager itself is stopped and replaced mid-way: it ends with
// exactly the requested pods each time.
func TestControllersConvergeAcrossRestarts(t *testing.T) {
	srv := servertest.Start(t)
	stop := runCM(t, srv)
	ctx := context.Background()
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](200),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/web:v1"}}},
			},
		},
	}
	created, err := srv.Client.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the scale-up to start", func() bool { return activePods(t, srv, created.UID) >= 10 })
	t.Logf("restarting the API server with %d of 200 pods made", activePods(t, srv, created.UID))
	srv.Restart(t)
	waitExactly(t, srv, created.UID, 200)

	// Now the controller manager goes mid-way through a scale-up.
	if _, err := srv.Client.AppsV1().ReplicaSets("default").Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"spec":{"replicas":400}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the second scale-up to start", func() bool { return activePods(t, srv, created.UID) >= 210 })
	stop()
	t.Logf("controller manager stopped with %d of 400 pods made", activePods(t, srv, created.UID))
	runCM(t, srv)
	waitExactly(t, srv, created.UID, 400)
	got, err := srv.Client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "status.replicas 400", func() bool {
		got, err = srv.Client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && got.Status.Replicas == 400 && got.Status.ObservedGeneration == got.Generation
	})
}
