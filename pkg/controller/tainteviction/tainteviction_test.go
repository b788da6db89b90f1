package tainteviction

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func toleration(key string, secs *int64) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs}
}

func TestEvictsAfterTheShortestToleration(t *testing.T) {
	added := metav1.NewTime(t0)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added},
		{Key: "other", Effect: corev1.TaintEffectNoSchedule},
	}}}
	pods := map[string][]corev1.Toleration{
		"untolerated": nil,
		"five":        {toleration(corev1.TaintNodeUnreachable, ptr.To[int64](5)), toleration("", ptr.To[int64](60))},
		"forever":     {toleration(corev1.TaintNodeUnreachable, nil)},
		"sixty":       {toleration(corev1.TaintNodeUnreachable, ptr.To[int64](60))},
	}
	client := fake.NewClientset(node)
	f := informers.NewSharedInformerFactory(client, 0)
	clk := clocktesting.NewFakeClock(t0.Add(time.Second))
	c, err := New(client, f, clk, record.NewFakeRecorder(100), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Core().V1().Nodes().Informer().GetIndexer().Add(node))
	for name, tols := range pods {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + "name"},
			Spec: corev1.PodSpec{NodeName: "n", Tolerations: tols}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		_, err := client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{})
		must(err)
		must(f.Core().V1().Pods().Informer().GetIndexer().Add(p))
	}
	syncAll := func() {
		for name := range pods {
			must(c.sync(context.Background(), "default/"+name))
		}
	}
	gone := func(name string) bool {
		_, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
	syncAll()
	if !gone("untolerated") {
		t.Fatal("a pod that does not tolerate the taint was not evicted at once")
	}
	for _, name := range []string{"five", "forever", "sixty"} {
		if gone(name) {
			t.Fatalf("%s evicted 1s after the taint", name)
		}
	}
	clk.SetTime(t0.Add(5 * time.Second))
	syncAll()
	if !gone("five") || gone("sixty") || gone("forever") {
		t.Fatalf("at 5s: five gone %v, sixty gone %v, forever gone %v; want only five", gone("five"), gone("sixty"), gone("forever"))
	}
	clk.SetTime(t0.Add(time.Hour))
	syncAll()
	if !gone("sixty") || gone("forever") {
		t.Fatalf("after an hour: sixty gone %v, forever gone %v", gone("sixty"), gone("forever"))
	}
	// The evicted pods were marked a disruption target first.
	var marked bool
	for _, a := range client.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			marked = true
		}
	}
	if !marked {
		t.Fatal("no pod got the DisruptionTarget condition before deletion")
	}
}
