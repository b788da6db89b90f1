package kubelet

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// envFrom passes on keys with dashes, dots, leading digits and symbols
// under any prefix, as upstream does since relaxed env var names (1.34);
// only names with '=' are dropped.
func TestEnvFromRelaxedNames(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"},
		Data: map[string]string{"data-1": "value-1", "data.2": "value-2", "a=b": "dropped"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"},
		Data: map[string][]byte{"data-1": []byte("secret-1")}}
	k := New(Config{NodeName: "node", Client: fake.NewSimpleClientset(testNode(), cm, sec)})
	ref := corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}
	c := corev1.Container{Name: "main",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &ref},
			{Prefix: "p-", ConfigMapRef: &ref},
			{Prefix: "1-", ConfigMapRef: &ref},
			{Prefix: "#@!", ConfigMapRef: &ref},
			{Prefix: "$_-", ConfigMapRef: &ref},
			{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
		},
		Env: []corev1.EnvVar{{Name: "FROM_KEY", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "data-1"}}}},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	env, err := k.envFor(context.Background(), pod, &pod.Spec.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range env {
		got[kv.Key] = string(kv.Value)
	}
	want := map[string]string{
		"data-1": "value-1", "data.2": "value-2", "p-data-1": "value-1", "1-data-1": "value-1",
		"#@!data-1": "value-1", "$_-data.2": "value-2", "S_data-1": "secret-1", "FROM_KEY": "value-1",
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %q, want %q (env %v)", name, got[name], v, got)
		}
	}
	for name := range got {
		if name == "a=b" || name == "p-a=b" {
			t.Errorf("name with '=' passed on: %q", name)
		}
	}
}
