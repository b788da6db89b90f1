package kubelet

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// testNode has 2 CPUs, 8Gi of memory and 100Gi of ephemeral storage
// allocatable.
func testNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node"},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("2"),
			corev1.ResourceMemory:           resource.MustParse("8Gi"),
			corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		}},
	}
}

func TestResourceFieldDefaults(t *testing.T) {
	limited := corev1.Container{Name: "limited", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("500m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
			"hugepages-2Mi":       resource.MustParse("4Mi"),
		},
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")},
	}}
	unlimited := corev1.Container{Name: "unlimited"}
	zeroLimit := corev1.Container{Name: "zero", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0")},
	}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{limited, unlimited, zeroLimit}}}
	cases := []struct {
		name      string
		container string
		resource  string
		divisor   string
		want      string
	}{
		{"cpu limit", "limited", "limits.cpu", "", "1"},
		{"cpu limit in millicores", "limited", "limits.cpu", "1m", "500"},
		{"memory limit in Mi", "limited", "limits.memory", "1Mi", "64"},
		{"memory request", "limited", "requests.memory", "", "33554432"},
		{"cpu request falls back to the limit", "limited", "requests.cpu", "1m", "500"},
		{"hugepages limit", "limited", "limits.hugepages-2Mi", "1Mi", "4"},
		{"no cpu limit: node allocatable", "unlimited", "limits.cpu", "", "2"},
		{"no cpu limit in millicores", "unlimited", "limits.cpu", "1m", "2000"},
		{"no memory limit: node allocatable", "unlimited", "limits.memory", "", "8589934592"},
		{"no memory limit in Mi", "unlimited", "limits.memory", "1Mi", "8192"},
		{"no ephemeral-storage limit", "unlimited", "limits.ephemeral-storage", "1Gi", "100"},
		{"zero cpu limit: node allocatable", "zero", "limits.cpu", "", "2"},
		{"no request, no limit: 0", "unlimited", "requests.memory", "", "0"},
		{"rounded up", "limited", "limits.memory", "1G", "1"},
	}
	k := New(Config{NodeName: "node", Client: fake.NewSimpleClientset(testNode())})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := &corev1.ResourceFieldSelector{ContainerName: tc.container, Resource: tc.resource}
			if tc.divisor != "" {
				ref.Divisor = resource.MustParse(tc.divisor)
			}
			got, err := resourceField(pod, nil, ref, k.allocatableOnce(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("%s of %s = %s, want %s", tc.resource, tc.container, got, tc.want)
			}
		})
	}
	t.Run("unsupported resource", func(t *testing.T) {
		_, err := resourceField(pod, &unlimited, &corev1.ResourceFieldSelector{Resource: "limits.pods"}, k.allocatableOnce(context.Background()))
		if err == nil {
			t.Fatal("no error")
		}
	})
}

// A container without limits sees the node's allocatable in its env and
// in downwardAPI volume files, and the node is looked up once.
func TestDownwardAPIDefaultLimits(t *testing.T) {
	client := fake.NewSimpleClientset(testNode())
	k := New(Config{NodeName: "node", Client: client})
	c := corev1.Container{Name: "main", Env: []corev1.EnvVar{
		{Name: "CPU_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
		{Name: "MEMORY_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}},
	}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	env, err := k.envFor(context.Background(), pod, &pod.Spec.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range env {
		got[kv.Key] = string(kv.Value)
	}
	if got["CPU_LIMIT"] != "2" || got["MEMORY_LIMIT"] != "8589934592" {
		t.Fatalf("env %v", got)
	}
	gets := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "get" && a.GetResource().Resource == "nodes" {
			gets++
		}
	}
	if gets != 1 {
		t.Fatalf("%d node gets, want 1", gets)
	}
	files, _, err := k.downwardFiles(context.Background(), pod, []corev1.DownwardAPIVolumeFile{
		{Path: "cpu_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "main", Resource: "limits.cpu", Divisor: resource.MustParse("1m")}},
		{Path: "memory_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "main", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(files["cpu_limit"]) != "2000" || string(files["memory_limit"]) != "8192" {
		t.Fatalf("files cpu_limit=%q memory_limit=%q", files["cpu_limit"], files["memory_limit"])
	}
}
