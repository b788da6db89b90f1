package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// subPathExpr expands from the container's env into a directory created in
// the volume; a missing or empty variable, an absolute path, ".." and a
// symlink out of the volume fail the container's config.
func TestSubPathExpr(t *testing.T) {
	root := t.TempDir()
	vol := filepath.Join(root, "vol")
	if err := os.Mkdir(vol, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(vol, "escape")); err != nil {
		t.Fatal(err)
	}
	k := New(Config{NodeName: "node", RootDir: t.TempDir(), Client: fake.NewSimpleClientset(testNode())})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid"}}
	mounts := func(m corev1.VolumeMount, env map[string]string) ([]*runtimeapi.Mount, error) {
		m.Name, m.MountPath = "work", "/mnt"
		c := &corev1.Container{Name: "main", VolumeMounts: []corev1.VolumeMount{m}}
		return k.containerMounts(pod, c, 0, map[string]string{"work": vol}, env, "")
	}
	got, err := mounts(corev1.VolumeMount{SubPathExpr: "$(ANNOTATION)/$(POD_NAME)"}, map[string]string{"ANNOTATION": "mypath", "POD_NAME": "p"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(vol, "mypath", "p"); got[0].HostPath != want {
		t.Fatalf("host path %s, want %s", got[0].HostPath, want)
	}
	if fi, err := os.Stat(got[0].HostPath); err != nil || !fi.IsDir() {
		t.Fatalf("subpath not created as a directory: %v", err)
	}
	for _, tc := range []struct {
		name string
		m    corev1.VolumeMount
		env  map[string]string
		want string
	}{
		{"empty variable", corev1.VolumeMount{SubPathExpr: "$(ANNOTATION)/$(POD_NAME)"}, map[string]string{"ANNOTATION": "", "POD_NAME": "p"}, "missing value for ANNOTATION"},
		{"unset variable", corev1.VolumeMount{SubPathExpr: "$(NOPE)"}, nil, "missing value for NOPE"},
		{"absolute", corev1.VolumeMount{SubPathExpr: "$(POD_NAME)"}, map[string]string{"POD_NAME": "/tmp"}, "must not be an absolute path"},
		{"backsteps", corev1.VolumeMount{SubPathExpr: "$(POD_NAME)"}, map[string]string{"POD_NAME": ".."}, "must not contain '..'"},
		{"backsteps inside", corev1.VolumeMount{SubPath: "a/../../b"}, nil, "must not contain '..'"},
		{"symlink out", corev1.VolumeMount{SubPath: "escape"}, nil, "not within volume path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mounts(tc.m, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// A container whose subPathExpr cannot expand waits with
// CreateContainerConfigError, as upstream reports it.
func TestSubPathExprConfigError(t *testing.T) {
	k := New(Config{NodeName: "node", RootDir: t.TempDir(), Client: fake.NewSimpleClientset(testNode())})
	c := corev1.Container{Name: "main", VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/mnt", SubPathExpr: "$(ANNOTATION)"}},
		Env: []corev1.EnvVar{{Name: "ANNOTATION", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['mysubpath']"}}}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	vols := map[string]string{"work": t.TempDir()}
	if _, err := k.containerConfig(context.Background(), pod, &pod.Spec.Containers[0], 0, vols, ""); err == nil || !strings.Contains(err.Error(), "missing value for ANNOTATION") {
		t.Fatalf("error %v, want missing value for ANNOTATION", err)
	}
	pod.Annotations = map[string]string{"mysubpath": "mypath"}
	cfg, err := k.containerConfig(context.Background(), pod, &pod.Spec.Containers[0], 0, vols, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(vols["work"], "mypath"); cfg.Mounts[0].HostPath != want {
		t.Fatalf("host path %s, want %s", cfg.Mounts[0].HostPath, want)
	}
}
