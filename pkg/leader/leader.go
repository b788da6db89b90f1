// Package leader runs a control-plane component only while this process
// holds its coordination.k8s.io Lease in kube-system, as upstream's
// components do, so several servers can run the same components safely.
package leader

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Upstream's default timings.
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// Run calls run with a context that ends when leadership is lost or ctx
// ends, each time this process becomes the leader of lease, until ctx
// ends. identity should be stable across restarts of the same server so a
// restarted server takes its lease back at once.
func Run(ctx context.Context, client kubernetes.Interface, lease, identity string, log *slog.Logger, run func(context.Context)) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: lease},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   LeaseDuration,
			RenewDeadline:   RenewDeadline,
			RetryPeriod:     RetryPeriod,
			ReleaseOnCancel: true,
			Name:            lease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					log.Info("became leader", "lease", lease, "identity", identity)
					run(ctx)
				},
				OnStoppedLeading: func() { log.Info("stopped leading", "lease", lease, "identity", identity) },
			},
		})
	}
}
