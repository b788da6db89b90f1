package service_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff/skiff/pkg/server/servertest"
)

// A services/status patch may change annotations and the load balancer
// status, as upstream's ("Services should complete a service status
// lifecycle"), but never the spec.
func TestStatusPatchKeepsMetadataNotSpec(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	svcs := srv.Client.CoreV1().Services("default")
	if _, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := svcs.Patch(ctx, "s", types.MergePatchType, []byte(`{"metadata":{"annotations":{"patchedstatus":"true"}},"spec":{"ports":[{"port":81}]},"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.1"}]}}}`), metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["patchedstatus"] != "true" || len(got.Status.LoadBalancer.Ingress) != 1 || got.Spec.Ports[0].Port != 80 {
		t.Fatalf("status patch: annotations %v, status %+v, ports %+v", got.Annotations, got.Status, got.Spec.Ports)
	}
}
