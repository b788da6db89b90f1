package controllermanager_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/controllermanager"
	"github.com/skiff/skiff/pkg/server"
	"github.com/skiff/skiff/pkg/server/servertest"
	"github.com/skiff/skiff/test/e2e/framework"
)

// runCM runs a controller manager against srv until the returned function
// stops it (as a kill would: nothing is handed over).
func runCM(t *testing.T, srv *servertest.Server) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = controllermanager.Run(ctx, controllermanager.Config{REST: srv.Config, RootCA: srv.Config.CAData, ClusterCIDR: "10.42.0.0/16"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
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

// TestRolloutConvergesAcrossControllerManagerRestarts rolls a Deployment
// through several versions on simulated nodes (stand-in kubelets mark
// pods ready) while the controller manager is stopped and replaced at
// random points: replicas never exceed replicas+maxSurge and every rollout
// ends complete, with exactly the right pods and revisions. SKIFF_SEED
// replays a run.
func TestRolloutConvergesAcrossControllerManagerRestarts(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SKIFF_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (SKIFF_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	srv := servertest.Start(t, func(c *server.Config) { c.DisableScheduler = false })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	framework.CreateSimulatedNodes(t, srv.Client, "sim", 3, nil)
	framework.RunStandInKubelets(ctx, srv.Client)
	stop := runCM(t, srv)

	const replicas, surge = 20, 5
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas:             ptr.To[int32](replicas),
			RevisionHistoryLimit: ptr.To[int32](2),
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/web:v0"}}},
			},
		},
	}
	if _, err := srv.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The invariant, checked on every consistent snapshot of the
	// ReplicaSets while the rollouts run.
	var worst atomic.Int32
	go func() {
		for ctx.Err() == nil {
			l, err := srv.Client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err == nil {
				var n int32
				for _, rs := range l.Items {
					n += *rs.Spec.Replicas
				}
				if n > worst.Load() {
					worst.Store(n)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for round := 0; round <= 6; round++ {
		image := fmt.Sprintf("registry.local/web:v%d", round)
		if round > 0 {
			patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":%q}]}}}}`, image)
			if _, err := srv.Client.AppsV1().Deployments("default").Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			for range 1 + rng.IntN(3) {
				time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
				stop()
				time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
				stop = runCM(t, srv)
			}
		}
		waitFor(t, 60*time.Second, image+" rolled out", func() bool {
			got, err := srv.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false
			}
			st := got.Status
			if st.ObservedGeneration < got.Generation || st.UpdatedReplicas != replicas || st.Replicas != replicas || st.AvailableReplicas != replicas {
				return false
			}
			pods, err := srv.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return false
			}
			n := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					if p.Spec.Containers[0].Image != image {
						return false
					}
					n++
				}
			}
			return n == replicas
		})
		got, _ := srv.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if rev := got.Annotations["deployment.kubernetes.io/revision"]; rev != strconv.Itoa(round+1) {
			t.Fatalf("round %d: revision %q", round, rev)
		}
		waitFor(t, 10*time.Second, "old replica sets scaled down and cleaned up", func() bool {
			l, err := srv.Client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil || len(l.Items) > 3 {
				return false
			}
			for _, rs := range l.Items {
				want := int32(0)
				if rs.Spec.Template.Spec.Containers[0].Image == image {
					want = replicas
				}
				if *rs.Spec.Replicas != want {
					return false
				}
			}
			return true
		})
	}
	if w := worst.Load(); w > replicas+surge {
		t.Fatalf("the ReplicaSets held %d replicas at once; replicas %d + maxSurge %d allow %d", w, replicas, surge, replicas+surge)
	}
}
