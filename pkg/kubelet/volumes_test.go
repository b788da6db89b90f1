package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff/skiff/pkg/kubelet/objectwatch"
)

// A pod's optional configMap, secret and projected volumes follow their
// sources (created later, updated, deleted) from the kubelet's watches,
// without a GET per sync.
func TestOptionalVolumesFollowTheirSources(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	k := New(Config{NodeName: "node", Client: client, RootDir: t.TempDir()})
	k.objects = objectwatch.New(ctx, client, func(types.UID) {})
	yes := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{
			{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Optional: &yes}}},
			{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "sec", Optional: &yes}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Optional: &yes}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Optional: &yes}},
			}}}},
		}},
	}
	k.objects.RegisterPod(pod)

	read := func(vol, file string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(k.podDir(pod.UID), "volumes", vol, file))
		return string(b), err == nil
	}
	// expect syncs the volumes until each file reads want ("" = absent).
	expect := func(want map[[2]string]string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := k.setupVolumes(ctx, pod); err != nil {
				t.Fatalf("setupVolumes: %v", err)
			}
			ok := true
			for f, w := range want {
				got, exists := read(f[0], f[1])
				if (w == "") == exists || got != w {
					ok = false
				}
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("volumes never matched %v", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	expect(map[[2]string]string{{"cm", "data"}: "", {"sec", "token"}: "", {"proj", "data"}: ""})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"data": "v1"}}
	if _, err := client.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "sec"}, Data: map[string][]byte{"token": []byte("s1")}}
	if _, err := client.CoreV1().Secrets("ns").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(map[[2]string]string{{"cm", "data"}: "v1", {"sec", "token"}: "s1", {"proj", "data"}: "v1", {"proj", "token"}: "s1"})

	cm.Data = map[string]string{"data": "v2"}
	if _, err := client.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(map[[2]string]string{{"cm", "data"}: "v2", {"proj", "data"}: "v2", {"proj", "token"}: "s1"})

	if err := client.CoreV1().ConfigMaps("ns").Delete(ctx, "cfg", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Secrets("ns").Delete(ctx, "sec", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(map[[2]string]string{{"cm", "data"}: "", {"sec", "token"}: "", {"proj", "data"}: "", {"proj", "token"}: ""})

	for _, a := range client.Actions() {
		if a.GetVerb() == "get" {
			t.Errorf("unexpected GET of %s: volumes read from the watches", a.GetResource().Resource)
		}
	}
}
