package framework

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SimulatedNode is a Node object with no machine behind it: Ready, with
// the given capacity, for scheduler and scale tests.
func SimulatedNode(name string, labels map[string]string, cpu, memory string, pods int64) *corev1.Node {
	l := map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}
	for k, v := range labels {
		l[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(cpu),
		corev1.ResourceMemory:           resource.MustParse(memory),
		corev1.ResourcePods:             *resource.NewQuantity(pods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	now := metav1.Now()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "simulated node", LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}},
		},
	}
}

// CreateSimulatedNodes creates n simulated nodes named prefix-0..n-1
// (labels(i) adds labels; it may be nil), 16 at a time.
func CreateSimulatedNodes(t testing.TB, cs kubernetes.Interface, prefix string, n int, labels func(i int) map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			var l map[string]string
			if labels != nil {
				l = labels(i)
			}
			errs <- CreateNode(ctx, cs, SimulatedNode(fmt.Sprintf("%s-%d", prefix, i), l, "32", "128Gi", 110))
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("create simulated node: %v", err)
		}
	}
}

// CreateNode creates a node object with its status (written through the
// status subresource when create drops it).
func CreateNode(ctx context.Context, cs kubernetes.Interface, node *corev1.Node) error {
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err == nil && len(created.Status.Conditions) == 0 {
		node.ResourceVersion = created.ResourceVersion
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	}
	return err
}
