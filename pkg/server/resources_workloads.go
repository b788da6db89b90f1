package server

import (
	"github.com/skiff/skiff/pkg/registry/pod"
)

// workloadResources adds pods and the controllers' workload resources.
func workloadResources(b *builder) error {
	podRes := pod.NewResource()
	pods := b.add(podRes)
	podRes.Subresources = pod.Subresources(pods, b.clock)
	return nil
}
