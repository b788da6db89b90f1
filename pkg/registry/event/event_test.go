package event_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/registry/event"
	"github.com/skiff/skiff/pkg/server/servertest"
)

func TestRoundTrip(t *testing.T) {
	now := metav1.NewMicroTime(time.Now().Truncate(time.Microsecond))
	in := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}, EventTime: now, ReportingController: "c", ReportingInstance: "i",
		Action: "Bind", Reason: "Scheduled", Note: "hello", Type: "Normal", Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p"},
		Series: &eventsv1.EventSeries{Count: 2, LastObservedTime: now}, DeprecatedCount: 3,
	}
	out := event.FromCore(event.ToCore(in))
	if out.Note != "hello" || out.Regarding.Name != "p" || out.Series.Count != 2 || out.DeprecatedCount != 3 || out.ReportingController != "c" {
		t.Fatalf("round trip lost fields: %+v", out)
	}
}

// TestBothAPIsShareEvents writes through one API and reads through the other.
func TestBothAPIsShareEvents(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	now := metav1.NewMicroTime(time.Now())
	_, err := srv.Client.EventsV1().Events("default").Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "from-v1"}, EventTime: now, ReportingController: "skiff/test", ReportingInstance: "test-1",
		Action: "Bind", Reason: "Scheduled", Note: "assigned", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := srv.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,involvedObject.name=web-1"})
	if err != nil || len(core.Items) != 1 || core.Items[0].Message != "assigned" {
		t.Fatalf("core/v1 view of an events.k8s.io event: %v %+v", err, core)
	}
	if _, err := srv.Client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "from-core"}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n1"},
		Reason: "Starting", Message: "kubelet starting", Type: corev1.EventTypeNormal, Count: 1,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v1, err := srv.Client.EventsV1().Events("default").Get(ctx, "from-core", metav1.GetOptions{})
	if err != nil || v1.Note != "kubelet starting" || v1.Regarding.Name != "n1" {
		t.Fatalf("events.k8s.io view of a core event: %v %+v", err, v1)
	}
	list, err := srv.Client.EventsV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=n1"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("events.k8s.io field selector: %v %d", err, len(list.Items))
	}
}
