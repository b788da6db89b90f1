package node

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/registry/validationtest"
)

func TestStatusColumn(t *testing.T) {
	ready := func(s corev1.ConditionStatus) []corev1.NodeCondition {
		return []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: s}}
	}
	cases := []struct {
		name string
		node corev1.Node
		want string
	}{
		{"ready", corev1.Node{Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionTrue)}}, "Ready"},
		{"not ready", corev1.Node{Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionFalse)}}, "NotReady"},
		{"ready unknown", corev1.Node{Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionUnknown)}}, "NotReady"},
		{"no condition", corev1.Node{}, "Unknown"},
		{"cordoned", corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}, Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionTrue)}}, "Ready,SchedulingDisabled"},
		{"cordoned without condition", corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}}, "Unknown,SchedulingDisabled"},
	}
	for _, tc := range cases {
		if got := Status(&tc.node); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRolesColumn(t *testing.T) {
	cases := []struct {
		labels map[string]string
		want   string
	}{
		{nil, "<none>"},
		{map[string]string{"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true"}, "control-plane,etcd"},
		{map[string]string{"node-role.kubernetes.io/master": "", "kubernetes.io/role": "master"}, "master"},
		{map[string]string{"node-role.kubernetes.io/": "", "kubernetes.io/role": ""}, "<none>"},
		{map[string]string{"kubernetes.io/role": "worker"}, "worker"},
	}
	for _, tc := range cases {
		if got := Roles(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels}}); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.labels, got, tc.want)
		}
	}
}

func TestWideColumns(t *testing.T) {
	row := NewResource().Table.Row(&corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.33.0", OSImage: "Debian GNU/Linux 12"}}}, metav1.Now().Time)
	want := []interface{}{"v1.33.0", "192.0.2.10", "<none>", "Debian GNU/Linux 12", "<unknown>", "<unknown>"}
	if got := row[4:]; !reflect.DeepEqual(got, want) {
		t.Fatalf("wide cells %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		spec corev1.NodeSpec
		want []string
	}{
		{"valid", corev1.NodeSpec{PodCIDRs: []string{"10.42.0.0/24"}, Taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}}, nil},
		{"bad pod CIDR", corev1.NodeSpec{PodCIDRs: []string{"10.42.0.0"}}, []string{
			`spec.podCIDRs[0]: Invalid value: "10.42.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)`}},
		{"two CIDRs of one family", corev1.NodeSpec{PodCIDRs: []string{"10.42.0.0/24", "10.43.0.0/24"}}, []string{
			`spec.podCIDRs: Invalid value: ["10.42.0.0/24","10.43.0.0/24"]: may specify no more than one CIDR for each IP family`}},
		{"taint effect", corev1.NodeSpec{Taints: []corev1.Taint{{Key: "a"}, {Key: "b", Effect: "Never"}}}, []string{
			"metadata.taints[0].effect: Required value",
			`metadata.taints[1].effect: Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`}},
		{"taint key", corev1.NodeSpec{Taints: []corev1.Taint{{Key: "bad key", Effect: corev1.TaintEffectNoSchedule}}}, []string{
			`metadata.taints[0].key: Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`}},
		{"duplicate taint", corev1.NodeSpec{Taints: []corev1.Taint{{Key: "a", Effect: corev1.TaintEffectNoSchedule}, {Key: "a", Value: "x", Effect: corev1.TaintEffectNoSchedule}}}, []string{
			`metadata.taints[1]: Duplicate value: {"key":"a","value":"x","effect":"NoSchedule"}: taints must be unique by key and effect pair`}},
	}
	for _, tc := range cases {
		n := &corev1.Node{Spec: tc.spec}
		validationtest.Expect(t, tc.name, Validate(n), tc.want)
	}
}
