package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestKillDuringCreatesLosesNothingAcknowledged kills the server with
// SIGKILL in the middle of 1000 concurrent creates, restarts it on the same
// data dir, and checks that every create the server acknowledged is there.
func TestKillDuringCreatesLosesNothingAcknowledged(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	cs := c.Client()
	const total, workers = 1000, 16
	var acked sync.Map
	var ackCount atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next := make(chan int, total)
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("obj-%04d", i)
				_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": fmt.Sprint(i)}}, metav1.CreateOptions{})
				if err == nil {
					acked.Store(name, true)
					ackCount.Add(1)
				}
			}
		}()
	}
	framework.Eventually(t, 30*time.Second, "300 acknowledged creates", func() bool { return ackCount.Load() >= 300 })
	c.Kill()
	wg.Wait()
	n := ackCount.Load()
	if n >= total {
		t.Fatalf("all %d creates finished before the kill; the test proves nothing", total)
	}
	c.Restart()
	list, err := c.Client().CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if !have[k.(string)] {
			missing++
			t.Errorf("acknowledged %s lost after kill -9", k)
		}
		return true
	})
	t.Logf("killed after %d acknowledged creates; %d objects after restart; %d lost", n, len(list.Items), missing)

	// An orderly restart keeps everything too.
	c.Restart()
	again, err := c.Client().CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Items) != len(list.Items) {
		t.Fatalf("after an orderly restart %d objects, before %d", len(again.Items), len(list.Items))
	}
}
