// Package workers runs a controller's reconcile function over its work
// queue: n goroutines take keys, a failed key is retried with the queue's
// rate-limited back-off, a successful one is forgotten. Every controller
// that reconciles by key uses it.
package workers

import (
	"context"
	"log/slog"
	gosync "sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Run processes q with sync on n goroutines until ctx ends, then shuts
// the queue down and returns once every goroutine has finished its key.
func Run[K comparable](ctx context.Context, q workqueue.TypedRateLimitingInterface[K], n int, sync func(context.Context, K) error, log *slog.Logger) {
	var wg gosync.WaitGroup
	for range n {
		wg.Go(func() {
			for next(ctx, q, sync, log) {
			}
		})
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}

// Resync adds key to q every period of clk until ctx ends, so a
// level-triggered loop also repairs what changed without an event.
func Resync[K comparable](ctx context.Context, q workqueue.TypedInterface[K], key K, period time.Duration, clk clock.WithTicker) {
	t := clk.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			q.Add(key)
		}
	}
}

func next[K comparable](ctx context.Context, q workqueue.TypedRateLimitingInterface[K], sync func(context.Context, K) error, log *slog.Logger) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	if ctx.Err() != nil {
		return false // stopping: keys left in the queue are not synced
	}
	if err := sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			log.Warn("sync failed, will retry", "key", key, "err", err)
		}
		q.AddRateLimited(key)
		return true
	}
	q.Forget(key)
	return true
}
