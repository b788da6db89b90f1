package server

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff/skiff/pkg/registry/event"
)

// clusterResources adds events (core/v1 and events.k8s.io/v1 over one
// storage).
func clusterResources(b *builder) error {
	b.add(event.NewResource())
	b.addWrapped(event.NewEventsV1Resource(), func() runtime.Object { return &corev1.Event{} }, event.NewConvertingStore)
	return nil
}
