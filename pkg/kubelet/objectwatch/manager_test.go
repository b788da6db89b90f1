package objectwatch

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func podWith(uid types.UID, volumes ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: string(uid), UID: uid},
		Spec:       corev1.PodSpec{Volumes: volumes},
	}
}

func cmVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}
}

func projectedSecretVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}}}}
}

// waitChange waits for onChange to report uid.
func waitChange(t *testing.T, ch <-chan types.UID, uid types.UID) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-ch:
			if got == uid {
				return
			}
		case <-timeout:
			t.Fatalf("no change reported for pod %s", uid)
		}
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigMapLifecycleReachesReferencingPods(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	changes := make(chan types.UID, 100)
	m := New(ctx, client, func(uid types.UID) { changes <- uid })
	m.RegisterPod(podWith("p1", cmVolume("cfg")))

	// Optional source that does not exist yet.
	if _, err := m.ConfigMap(ctx, "ns", "cfg"); !apierrors.IsNotFound(err) {
		t.Fatalf("ConfigMap before creation: err = %v, want NotFound", err)
	}
	cms := client.CoreV1().ConfigMaps("ns")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"k": "v1"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changes, "p1")
	eventually(t, func() bool {
		got, err := m.ConfigMap(ctx, "ns", "cfg")
		return err == nil && got.Data["k"] == "v1"
	})

	cm.Data["k"] = "v2"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changes, "p1")
	eventually(t, func() bool {
		got, err := m.ConfigMap(ctx, "ns", "cfg")
		return err == nil && got.Data["k"] == "v2"
	})

	if err := cms.Delete(ctx, "cfg", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changes, "p1")
	eventually(t, func() bool {
		_, err := m.ConfigMap(ctx, "ns", "cfg")
		return apierrors.IsNotFound(err)
	})

	// Reads of a watched object never GET.
	for _, a := range client.Actions() {
		if a.GetVerb() == "get" {
			t.Errorf("unexpected API call %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestWatchesFollowPodReferences(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, fake.NewClientset(), func(types.UID) {})
	m.RegisterPod(podWith("p1", cmVolume("a"), projectedSecretVolume("s")))
	m.RegisterPod(podWith("p2", cmVolume("a")))
	// Registering again changes nothing.
	m.RegisterPod(podWith("p2", cmVolume("a")))
	if n := len(m.watches); n != 2 {
		t.Fatalf("watches = %d, want 2 (configmap a, secret s)", n)
	}
	m.UnregisterPod("p1")
	if _, ok := m.watches[ref{configMaps, "ns", "a"}]; !ok || len(m.watches) != 1 {
		t.Fatalf("after p1 left: watches = %v, want only configmap a", m.watches)
	}
	m.UnregisterPod("p2")
	if len(m.watches) != 0 || len(m.pods) != 0 {
		t.Fatalf("after all pods left: watches = %v, pods = %v, want none", m.watches, m.pods)
	}
}

func TestUnwatchedReadGoesToAPI(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}})
	m := New(ctx, client, func(types.UID) {})
	if _, err := m.Secret(ctx, "ns", "s"); err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if _, err := m.Secret(ctx, "ns", "missing"); !apierrors.IsNotFound(err) {
		t.Fatalf("missing Secret: err = %v, want NotFound", err)
	}
}
