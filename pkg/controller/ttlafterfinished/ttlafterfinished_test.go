package ttlafterfinished

import (
	"context"
	"log/slog"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

func finishedJob(name string, ttl *int32, at time.Time) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), ResourceVersion: "5"},
		Spec:       batchv1.JobSpec{TTLSecondsAfterFinished: ttl},
		Status: batchv1.JobStatus{
			CompletionTime: &metav1.Time{Time: at},
			Conditions:     []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}},
		},
	}
}

func TestDeletesOnlyAfterTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	expiring := finishedJob("expiring", ptr.To[int32](60), now.Add(-30*time.Second))
	forever := finishedJob("forever", nil, now.Add(-time.Hour))
	client := fake.NewClientset(expiring, forever)
	var deleted []string
	var policy metav1.DeletionPropagation
	client.PrependReactor("delete", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteActionImpl)
		deleted = append(deleted, d.Name)
		policy = *d.DeleteOptions.PropagationPolicy
		return false, nil, nil
	})
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, f, clk, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []*batchv1.Job{expiring, forever} {
		if err := f.Batch().V1().Jobs().Informer().GetIndexer().Add(j); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, key := range []string{"default/expiring", "default/forever"} {
		if err := c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if len(deleted) != 0 {
		t.Fatalf("deleted %v before the TTL", deleted)
	}
	clk.Step(31 * time.Second)
	for _, key := range []string{"default/expiring", "default/forever"} {
		if err := c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if len(deleted) != 1 || deleted[0] != "expiring" || policy != metav1.DeletePropagationForeground {
		t.Fatalf("deleted %v with %q, want expiring in the foreground", deleted, policy)
	}
}
