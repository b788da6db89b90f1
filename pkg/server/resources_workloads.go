package server

import (
	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/apps/controllerrevision"
	"github.com/skiff/skiff/pkg/registry/apps/daemonset"
	"github.com/skiff/skiff/pkg/registry/apps/deployment"
	"github.com/skiff/skiff/pkg/registry/apps/replicaset"
	"github.com/skiff/skiff/pkg/registry/apps/statefulset"
	"github.com/skiff/skiff/pkg/registry/batch/cronjob"
	"github.com/skiff/skiff/pkg/registry/batch/job"
	"github.com/skiff/skiff/pkg/registry/pod"
	"github.com/skiff/skiff/pkg/registry/policy/poddisruptionbudget"
	"github.com/skiff/skiff/pkg/registry/replicationcontroller"
)

// workloadResources adds pods, the PodDisruptionBudgets their eviction
// respects, and the workload resources controllers run.
func workloadResources(b *builder) error {
	podRes := pod.NewResource()
	pods := b.add(podRes)
	budgets := b.add(poddisruptionbudget.NewResource())
	podRes.Subresources = pod.Subresources(pods, budgets, b.clock, b.kubelets, b.backends)
	for _, r := range []*registry.Resource{
		replicationcontroller.NewResource(),
		replicaset.NewResource(),
		deployment.NewResource(),
		daemonset.NewResource(),
		statefulset.NewResource(),
		controllerrevision.NewResource(),
		job.NewResource(),
		cronjob.NewResource(),
	} {
		b.add(r)
	}
	return nil
}
