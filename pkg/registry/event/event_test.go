package event_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/server/servertest"
)

// TestBothAPIsShareEvents writes through one API and reads, selects and
// watches through the other.
func TestBothAPIsShareEvents(t *testing.T) {
	srv := servertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	core, v1 := srv.Client.CoreV1().Events("default"), srv.Client.EventsV1().Events("default")

	w, err := v1.Watch(ctx, metav1.ListOptions{FieldSelector: "regarding.kind=Node"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	now := metav1.NewMicroTime(time.Now())
	created, err := v1.Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "from-v1"}, EventTime: now, ReportingController: "skiff.io/test", ReportingInstance: "test-1",
		Action: "Bind", Reason: "Scheduled", Note: "assigned", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1", UID: "uid-1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := core.List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,involvedObject.name=web-1,involvedObject.uid=uid-1"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Message != "assigned" || list.Items[0].ReportingController != "skiff.io/test" {
		t.Fatalf("core/v1 view of an events.k8s.io event: %v %+v", err, list)
	}
	if list.Items[0].ResourceVersion != created.ResourceVersion {
		t.Fatalf("one object, two resourceVersions: %s and %s", list.Items[0].ResourceVersion, created.ResourceVersion)
	}

	if _, err := core.Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "from-core"}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n1"},
		Reason: "Starting", Message: "kubelet starting", Type: corev1.EventTypeNormal, Count: 1, Source: corev1.EventSource{Component: "kubelet", Host: "n1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := v1.Get(ctx, "from-core", metav1.GetOptions{})
	if err != nil || got.Note != "kubelet starting" || got.Regarding.Name != "n1" || got.DeprecatedSource.Host != "n1" || got.DeprecatedCount != 1 {
		t.Fatalf("events.k8s.io view of a core event: %v %+v", err, got)
	}
	v1List, err := srv.Client.EventsV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=n1,source=kubelet"})
	if err != nil || len(v1List.Items) != 1 || v1List.Items[0].Name != "from-core" {
		t.Fatalf("events.k8s.io field selector: %v %+v", err, v1List)
	}
	select {
	case ev := <-w.ResultChan():
		if e, ok := ev.Object.(*eventsv1.Event); ev.Type != watch.Added || !ok || e.Name != "from-core" {
			t.Fatalf("watch event %s %T", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("events.k8s.io watch did not see the core event")
	}

	// The new API updates only the series; other fields are immutable.
	got.Series = &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(time.Now())}
	created.Series = got.Series
	if _, err := v1.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("series update: %v", err)
	}
	created, _ = v1.Get(ctx, "from-v1", metav1.GetOptions{})
	created.Note = "changed"
	if _, err := v1.Update(ctx, created, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("note change through events.k8s.io: %v, want 422", err)
	}
	if _, err := v1.Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Type: "Normal"}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("incomplete events.k8s.io event: %v, want 422", err)
	}
}

// TestCoreEventsCreateOnUpdate: recorders PUT events that may not exist.
func TestCoreEventsCreateOnUpdate(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	e := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "put.1", Namespace: "default"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p"}, Reason: "Created", Count: 1}
	if _, err := srv.Client.CoreV1().Events("default").Update(ctx, e, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("create on update: %v", err)
	}
	if _, err := srv.Client.CoreV1().Events("kube-system").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p"}}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("namespace mismatch: %v, want 422", err)
	}
}
