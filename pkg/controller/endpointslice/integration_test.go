package endpointslice_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/controller/endpoints"
	"github.com/skiff/skiff/pkg/controller/endpointslice"
	"github.com/skiff/skiff/pkg/server/servertest"
)

// TestAgainstAPIServer runs both controllers against a real API server: a
// Service's Endpoints and EndpointSlices follow its pods' addresses and
// readiness, drop or mark terminating pods, and go with the Service.
func TestAgainstAPIServer(t *testing.T) {
	srv := servertest.Start(t)
	client := srv.Client
	ctx := context.Background()
	runControllers(t, client)

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, ready := range []bool{true, true, false} {
		startPod(t, ctx, client, fmt.Sprintf("web-%d", i), fmt.Sprintf("10.42.0.%d", i+1), ready)
	}

	waitFor(t, "endpoints with 2 ready and 1 not-ready address", func() bool {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || len(ep.Subsets) != 1 {
			return false
		}
		s := ep.Subsets[0]
		return ips(s.Addresses) == "10.42.0.1,10.42.0.2" && ips(s.NotReadyAddresses) == "10.42.0.3" &&
			len(s.Ports) == 1 && s.Ports[0].Port == 8080 && ep.Labels[endpoints.LabelManagedBy] == endpoints.ControllerName
	})
	waitFor(t, "a slice with 3 endpoints", func() bool {
		eps, ok := sliceEndpoints(ctx, client)
		return ok && len(eps) == 3 && *eps["10.42.0.1"].Conditions.Ready && !*eps["10.42.0.3"].Conditions.Ready
	})

	// A pod is deleted: with no kubelet it stays, terminating. Endpoints
	// drop it; the slice keeps it, marked terminating.
	if err := client.CoreV1().Pods("default").Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the terminating pod out of the Endpoints", func() bool {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && ips(ep.Subsets[0].Addresses) == "10.42.0.2"
	})
	waitFor(t, "the terminating pod marked in the slice", func() bool {
		eps, ok := sliceEndpoints(ctx, client)
		e, found := eps["10.42.0.1"]
		return ok && found && *e.Conditions.Terminating && !*e.Conditions.Ready
	})

	// The Service goes, and everything made for it.
	if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Endpoints and slices deleted", func() bool {
		_, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		l, lerr := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		return apierrors.IsNotFound(err) && lerr == nil && len(l.Items) == 0
	})
}

// runControllers runs both controllers until the test ends.
func runControllers(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	f := informers.NewSharedInformerFactory(client, 0)
	ep, err := endpoints.New(client, f, clock.RealClock{}, log)
	if err != nil {
		t.Fatal(err)
	}
	es, err := endpointslice.New(client, f, clock.RealClock{}, log)
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	synced := f.WaitForCacheSync(ctx.Done())
	done := make(chan struct{}, 2)
	go func() { ep.Run(ctx, 2); done <- struct{}{} }()
	go func() { es.Run(ctx, 2); done <- struct{}{} }()
	t.Cleanup(func() {
		// Stop the controllers before the server goes.
		cancel()
		for range cap(done) {
			<-done
		}
		f.Shutdown()
	})
	for typ, ok := range synced {
		if !ok {
			t.Fatalf("%v informer did not sync", typ)
		}
	}
}

// startPod creates a pod as a kubelet would leave it: on a node, with an
// IP and a Ready condition.
func startPod(t *testing.T, ctx context.Context, client kubernetes.Interface, name, ip string, ready bool) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "registry.local/web:v1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	p, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
	}
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ips(addrs []corev1.EndpointAddress) string {
	var out []string
	for _, a := range addrs {
		out = append(out, a.IP)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// sliceEndpoints returns the endpoints of the web Service's slices by
// address.
func sliceEndpoints(ctx context.Context, client kubernetes.Interface) (map[string]discoveryv1.Endpoint, bool) {
	l, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=web," + discoveryv1.LabelManagedBy + "=" + endpointslice.ControllerName,
	})
	if err != nil {
		return nil, false
	}
	out := map[string]discoveryv1.Endpoint{}
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			out[e.Addresses[0]] = e
		}
	}
	return out, true
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return ok(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}
