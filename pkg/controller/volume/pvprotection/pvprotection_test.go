package pvprotection

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestRemovesFinalizerOnlyWhenNotBound(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for phase, wantKept := range map[corev1.PersistentVolumePhase]bool{
		corev1.VolumeBound: true, corev1.VolumeReleased: false, corev1.VolumeAvailable: false,
	} {
		t.Run(string(phase), func(t *testing.T) {
			pv := &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: "vol", DeletionTimestamp: &now, Finalizers: []string{Finalizer, "other"}},
				Status:     corev1.PersistentVolumeStatus{Phase: phase},
			}
			client := fake.NewClientset(pv)
			f := informers.NewSharedInformerFactory(client, 0)
			c, err := New(client, f, clocktesting.NewFakeClock(now.Time), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(pv); err != nil {
				t.Fatal(err)
			}
			if err := c.sync(context.Background(), "vol"); err != nil {
				t.Fatal(err)
			}
			got, err := client.CoreV1().PersistentVolumes().Get(context.Background(), "vol", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			kept := len(got.Finalizers) == 2
			if kept != wantKept || got.Finalizers[len(got.Finalizers)-1] != "other" {
				t.Fatalf("finalizers %v, want protection kept=%v", got.Finalizers, wantKept)
			}
		})
	}
}
