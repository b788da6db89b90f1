// Package workers runs a controller's reconcile function over its work
// queue: n goroutines take keys, a failed key is retried with the queue's
// rate-limited back-off, a successful one is forgotten. Every controller
// that reconciles by key uses it.
package workers

import (
	"context"
	"log/slog"

	"k8s.io/client-go/util/workqueue"
)

// Run processes q with sync on n goroutines until ctx ends, then shuts
// the queue down.
func Run[K comparable](ctx context.Context, q workqueue.TypedRateLimitingInterface[K], n int, sync func(context.Context, K) error, log *slog.Logger) {
	defer q.ShutDown()
	for range n {
		go func() {
			for next(ctx, q, sync, log) {
			}
		}()
	}
	<-ctx.Done()
}

func next[K comparable](ctx context.Context, q workqueue.TypedRateLimitingInterface[K], sync func(context.Context, K) error, log *slog.Logger) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
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
