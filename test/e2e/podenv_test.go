package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestPodEnvAndSubPaths covers, on a real node, what the upstream
// conformance specs check of a container's environment, subPathExpr and
// FallbackToLogsOnError termination messages.
func TestPodEnvAndSubPaths(t *testing.T) {
	c := nodeCluster(t)
	cs := c.Client()
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")
	newPod := func(name string, command ...string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			NodeName: framework.NodeName, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "main", Image: busybox, ImagePullPolicy: corev1.PullIfNotPresent, Command: command}},
			Volumes:    []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		}}
	}
	create := func(t *testing.T, p *corev1.Pod) {
		t.Helper()
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	finished := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	logs := func(t *testing.T, name string) string {
		t.Helper()
		b, err := pods.GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	configError := func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].State.Waiting != nil && s[0].State.Waiting.Reason == "CreateContainerConfigError"
	}
	subPathPod := func(name, expr string, env ...corev1.EnvVar) *corev1.Pod {
		p := newPod(name, "sh", "-c", "sleep 600")
		p.Spec.TerminationGracePeriodSeconds = new(int64)
		p.Spec.Containers[0].Env = env
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/subpath_mount", SubPathExpr: expr}}
		return p
	}

	t.Run("envFrom names with dashes and prefixes", func(t *testing.T) {
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "env-cm"},
			Data: map[string]string{"data-1": "value-1", "data-2": "value-2"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "env-secret"},
			Data: map[string][]byte{"data-1": []byte("secret-1")}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env-cm"}}
		// env itself, not `sh -c env`: Debian's busybox 1.35 ash drops
		// variables whose names are not shell identifiers.
		p := newPod("env-from", "env")
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{
			{ConfigMapRef: cm}, {Prefix: "p-", ConfigMapRef: cm}, {Prefix: "1-", ConfigMapRef: cm}, {Prefix: "#@!", ConfigMapRef: cm},
			{Prefix: "s-", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}}},
		}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CONFIG_DATA_1", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "env-cm"}, Key: "data-1"}}}}
		create(t, p)
		if got := waitPod(t, c, p.Name, 60*time.Second, "finished", finished); got.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("pod: %+v", got.Status.ContainerStatuses)
		}
		out := logs(t, p.Name)
		for _, want := range []string{"data-1=value-1", "data-2=value-2", "p-data-1=value-1", "1-data-2=value-2", "#@!data-1=value-1", "s-data-1=secret-1", "CONFIG_DATA_1=value-1"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("env lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("subPathExpr expands from env", func(t *testing.T) {
		p := newPod("subpath-expand", "sh", "-c", "test -d /volume_mount/subpath-expand; echo $?")
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "POD_NAME", Value: "subpath-expand"}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: "work", MountPath: "/subpath_mount", SubPathExpr: "$(POD_NAME)"},
			{Name: "work", MountPath: "/volume_mount"},
		}
		create(t, p)
		if got := waitPod(t, c, p.Name, 60*time.Second, "finished", finished); got.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("pod: %+v", got.Status.ContainerStatuses)
		}
		if out := logs(t, p.Name); out != "0\n" {
			t.Fatalf("logs %q, want the subpath directory in the volume", out)
		}
	})

	for name, value := range map[string]string{"subpath-absolute": "/tmp", "subpath-backsteps": ".."} {
		t.Run(name+" fails the container's config", func(t *testing.T) {
			create(t, subPathPod(name, "$(POD_NAME)", corev1.EnvVar{Name: "POD_NAME", Value: value}))
			got := waitPod(t, c, name, 60*time.Second, "CreateContainerConfigError", configError)
			if got.Status.Phase != corev1.PodPending {
				t.Fatalf("phase %s, want Pending", got.Status.Phase)
			}
		})
	}

	t.Run("failing subPathExpr fixed by an annotation", func(t *testing.T) {
		p := subPathPod("subpath-lifecycle", "$(ANNOTATION)/$(POD_NAME)",
			corev1.EnvVar{Name: "POD_NAME", Value: "foo"},
			corev1.EnvVar{Name: "ANNOTATION", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['mysubpath']"}}})
		p.Annotations = map[string]string{"notmysubpath": "mypath"}
		create(t, p)
		got := waitPod(t, c, p.Name, 60*time.Second, "CreateContainerConfigError", configError)
		if got.Status.Phase != corev1.PodPending {
			t.Fatalf("phase %s, want Pending", got.Status.Phase)
		}
		got.Annotations["mysubpath"] = "mypath"
		if _, err := pods.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPod(t, c, p.Name, 60*time.Second, "Running", running)
	})

	t.Run("FallbackToLogsOnError", func(t *testing.T) {
		p := newPod("term-fallback", "sh", "-c", "echo -n DONE; exit 1")
		p.Spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
		create(t, p)
		got := waitPod(t, c, p.Name, 60*time.Second, "finished", finished)
		s := got.Status.ContainerStatuses
		if got.Status.Phase != corev1.PodFailed || len(s) != 1 || s[0].State.Terminated == nil {
			t.Fatalf("pod %s: %+v", got.Status.Phase, s)
		}
		if msg := s[0].State.Terminated.Message; msg != "DONE" {
			t.Fatalf("termination message %q, want %q", msg, "DONE")
		}
	})
}
