// Package podsbynode indexes a pod informer by the node each pod is bound
// to, for the controllers that act on a node's pods (node lifecycle,
// taint eviction, pod GC).
package podsbynode

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// index is the name of the index.
const index = "spec.nodeName"

// Add indexes inf's pods by spec.nodeName (once: a second controller
// sharing the informer finds the index there).
func Add(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[index]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{index: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}})
}

// Pods returns the pods in indexer bound to node.
func Pods(indexer cache.Indexer, node string) []*corev1.Pod {
	objs, err := indexer.ByIndex(index, node)
	if err != nil {
		return nil
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			pods = append(pods, p)
		}
	}
	return pods
}
