package cronjob

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// TestRunWakesOnSchedule runs the whole controller (informers, workers,
// timed requeues) on a fake clock: nothing but the requeue for the next
// schedule time can make the Jobs, since the clock only moves when the
// test moves it.
func TestRunWakesOnSchedule(t *testing.T) {
	client := fake.NewClientset(newCronJob("*/5 * * * *"))
	client.PrependReactor("create", "jobs", func(a clienttesting.Action) (bool, runtime.Object, error) {
		j := a.(clienttesting.CreateAction).GetObject().(*batchv1.Job)
		j.UID = types.UID(j.Name + "-uid")
		return false, nil, nil
	})
	clk := testingclock.NewFakeClock(created)
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, f, clk, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		c.Run(ctx, 2)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
		f.Shutdown()
	})

	jobs := func() []string {
		l, err := client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range l.Items {
			out = append(out, j.Name)
		}
		slices.Sort(out)
		return out
	}
	active := func() int {
		cj, err := client.BatchV1().CronJobs(ns).Get(ctx, "backup", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(cj.Status.Active)
	}
	// A timed requeue is a fake-clock timer beside the queue's heartbeat.
	requeuePending := func() bool { return clk.Waiters() >= 2 }

	for i, due := range []int{5, 10} {
		waitFor(t, requeuePending)
		clk.SetTime(justAfter(at(10, due)))
		waitFor(t, func() bool { return len(jobs()) == i+1 && active() == i+1 })
	}
	want := []string{name(at(10, 5)), name(at(10, 10))}
	if got := jobs(); !slices.Equal(got, want) {
		t.Errorf("jobs = %v, want %v", got, want)
	}
}
