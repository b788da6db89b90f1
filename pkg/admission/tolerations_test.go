package admission

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/registry"
)

func TestDefaultTolerationSeconds(t *testing.T) {
	plugin := DefaultTolerationSeconds{NotReady: 30, Unreachable: 5}
	for _, tc := range []struct {
		name string
		have []corev1.Toleration
		op   registry.Operation
		want []corev1.Toleration
	}{
		{name: "none", op: registry.Create, want: []corev1.Toleration{
			{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
			{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](5)},
		}},
		{name: "own unreachable kept", op: registry.Create,
			have: []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](1)}},
			want: []corev1.Toleration{
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](1)},
				{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
			}},
		{name: "tolerate everything", op: registry.Create,
			have: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			want: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
		{name: "NoSchedule only does not count", op: registry.Create,
			have: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			want: []corev1.Toleration{
				{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
				{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](5)},
			}},
		{name: "updates untouched", op: registry.Update},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.have}}
			if err := plugin.Admit(context.Background(), &registry.Attributes{Operation: tc.op, Object: p}); err != nil {
				t.Fatal(err)
			}
			if len(p.Spec.Tolerations) != len(tc.want) {
				t.Fatalf("tolerations %+v, want %+v", p.Spec.Tolerations, tc.want)
			}
			for i := range tc.want {
				g, w := p.Spec.Tolerations[i], tc.want[i]
				if g.Key != w.Key || g.Effect != w.Effect || g.Operator != w.Operator || ptr.Deref(g.TolerationSeconds, -1) != ptr.Deref(w.TolerationSeconds, -1) {
					t.Fatalf("toleration %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
