package nodestatus

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/pkg/machine"
)

func condition(n *corev1.Node, t corev1.NodeConditionType) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func TestSetStatusConditionsAndTransitions(t *testing.T) {
	cfg := &Config{NodeName: "n1", Labels: map[string]string{"role": "x"}}
	cfg.setDefaults()
	info := machine.Info{CPUs: 4, MemoryBytes: 8 << 30, MemAvailableBytes: 4 << 30, DiskBytes: 100 << 30, DiskAvailableBytes: 50 << 30, PIDMax: 1000, PIDsInUse: 10, OS: "linux", Arch: "amd64"}
	node := &corev1.Node{}
	t0 := time.Unix(1000, 0)
	SetStatus(node, cfg, info, t0)
	if c := condition(node, corev1.NodeReady); c.Status != corev1.ConditionTrue || c.Reason != "KubeletReady" {
		t.Fatalf("Ready: %+v", c)
	}
	if c := condition(node, corev1.NodeMemoryPressure); c.Status != corev1.ConditionFalse {
		t.Fatalf("MemoryPressure: %+v", c)
	}
	if node.Status.Capacity.Cpu().Value() != 4 || node.Labels["role"] != "x" || node.Labels[corev1.LabelHostname] != "n1" {
		t.Fatalf("capacity/labels: %+v %v", node.Status.Capacity, node.Labels)
	}
	if node.Status.Allocatable.Memory().Value() != 8<<30-100<<20 {
		t.Fatalf("allocatable memory %d", node.Status.Allocatable.Memory().Value())
	}

	// Low memory and disk: pressure, with new transition times; Ready's
	// transition time stays.
	t1 := t0.Add(time.Minute)
	info.MemAvailableBytes, info.DiskAvailableBytes = 50<<20, 5<<30
	before := node.DeepCopy()
	SetStatus(node, cfg, info, t1)
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure} {
		if c := condition(node, typ); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Time.Equal(t1) {
			t.Fatalf("%s: %+v", typ, c)
		}
	}
	if c := condition(node, corev1.NodeReady); !c.LastTransitionTime.Time.Equal(t0) || !c.LastHeartbeatTime.Time.Equal(t1) {
		t.Fatalf("Ready times: %+v", c)
	}
	if !changed(&node.Status, &before.Status) {
		t.Fatal("pressure change not detected")
	}
	again := node.DeepCopy()
	SetStatus(again, cfg, info, t1.Add(time.Second))
	if changed(&again.Status, &node.Status) {
		t.Fatal("a heartbeat alone counted as a change")
	}
}
