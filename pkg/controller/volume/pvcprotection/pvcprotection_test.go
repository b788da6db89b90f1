package pvcprotection

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

func pod(name, claim string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func TestFinalizerStaysWhileAPodUsesTheClaim(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for name, tc := range map[string]struct {
		pods     []*corev1.Pod
		cached   bool
		wantKept bool
	}{
		"running pod in cache":    {pods: []*corev1.Pod{pod("p", "data", corev1.PodRunning)}, cached: true, wantKept: true},
		"running pod not cached":  {pods: []*corev1.Pod{pod("p", "data", corev1.PodPending)}, wantKept: true},
		"only terminated pods":    {pods: []*corev1.Pod{pod("p", "data", corev1.PodSucceeded), pod("q", "data", corev1.PodFailed)}, cached: true},
		"pods using other claims": {pods: []*corev1.Pod{pod("p", "other", corev1.PodRunning)}, cached: true},
		"no pods":                 {},
	} {
		t.Run(name, func(t *testing.T) {
			pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
				Name: "data", Namespace: "default", DeletionTimestamp: &now, Finalizers: []string{Finalizer}}}
			objs := []runtime.Object{pvc}
			for _, p := range tc.pods {
				objs = append(objs, p)
			}
			client := fake.NewClientset(objs...)
			f := informers.NewSharedInformerFactory(client, 0)
			c, err := New(client, f, clocktesting.NewFakeClock(now.Time), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(pvc); err != nil {
				t.Fatal(err)
			}
			if tc.cached {
				for _, p := range tc.pods {
					if err := f.Core().V1().Pods().Informer().GetIndexer().Add(p); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := c.sync(context.Background(), "default/data"); err != nil {
				t.Fatal(err)
			}
			got, err := client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if kept := len(got.Finalizers) == 1; kept != tc.wantKept {
				t.Fatalf("finalizers %v, want kept=%v", got.Finalizers, tc.wantKept)
			}
		})
	}
}
