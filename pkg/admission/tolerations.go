package admission

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/skiff/skiff/pkg/registry"
)

// DefaultNodeTolerationSeconds is how long pods tolerate not-ready and
// unreachable nodes unless they say otherwise, as upstream's default.
const DefaultNodeTolerationSeconds = 300

// DefaultTolerationSeconds gives every pod created without one a
// toleration of the node.kubernetes.io/not-ready and unreachable
// NoExecute taints for a limited time, so the pods of a failed node are
// evicted after it, as upstream's plugin (--default-not-ready-toleration-seconds
// and --default-unreachable-toleration-seconds).
type DefaultTolerationSeconds struct {
	NotReady, Unreachable int64
}

var _ registry.Mutator = DefaultTolerationSeconds{}

// Mutates implements registry.Mutator.
func (DefaultTolerationSeconds) Mutates() {}

// Admit implements registry.Admitter.
func (d DefaultTolerationSeconds) Admit(_ context.Context, a *registry.Attributes) error {
	p, ok := a.Object.(*corev1.Pod)
	if !ok || a.Operation != registry.Create || a.Subresource != "" {
		return nil
	}
	for _, def := range []struct {
		key  string
		secs int64
	}{{corev1.TaintNodeNotReady, d.NotReady}, {corev1.TaintNodeUnreachable, d.Unreachable}} {
		key, secs := def.key, def.secs
		taint := corev1.Taint{Key: key, Effect: corev1.TaintEffectNoExecute}
		tolerated := false
		for _, t := range p.Spec.Tolerations {
			tolerated = tolerated || t.ToleratesTaint(klog.Background(), &taint, false)
		}
		if !tolerated {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs})
		}
	}
	return nil
}
