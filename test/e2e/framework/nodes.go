package framework

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
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
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	KeepNodesAlive(t, cs, names...)
}

// KeepNodesAlive renews the node Leases of the named simulated nodes
// every 10 s until the test ends, as their kubelets would, so the node
// lifecycle controller does not find them dead.
func KeepNodesAlive(t testing.TB, cs kubernetes.Interface, names ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		RenewNodeLeases(ctx, cs, 10*time.Second, names...)
	}()
}

// RenewNodeLeases renews (creating when missing) the named nodes' Leases
// in kube-node-lease every period until ctx ends; errors (a restarting
// server) are retried at the next period.
func RenewNodeLeases(ctx context.Context, cs kubernetes.Interface, period time.Duration, names ...string) {
	leases := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	for {
		for _, name := range names {
			now := metav1.NewMicroTime(time.Now())
			l, err := leases.Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, _ = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now}}, metav1.CreateOptions{})
			case err == nil:
				l.Spec.RenewTime = &now
				_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
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
