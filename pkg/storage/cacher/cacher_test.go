package cacher_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff/skiff/pkg/storage"
	"github.com/skiff/skiff/pkg/storage/cacher"
	"github.com/skiff/skiff/pkg/storage/etcd3"
	"github.com/skiff/skiff/pkg/storage/storagetest"
)

const prefix = "/registry/configmaps/"

func key(name string) string { return prefix + "ns/" + name }

func cm(name, label string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"k": label}}}
}

type fixture struct {
	etcd  *etcd3.Store
	c     *cacher.Cacher
	clock *clocktesting.FakeClock
}

func newFixture(t *testing.T, history int) *fixture {
	t.Helper()
	st, _ := storagetest.NewStore(t)
	clk := clocktesting.NewFakeClock(time.Now())
	c := cacher.New(cacher.Config{Delegate: st, Prefix: prefix, HistorySize: history, Clock: clk, BookmarkInterval: time.Minute,
		NewObject: func() runtime.Object { return &corev1.ConfigMap{} }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)
	<-c.Ready()
	return &fixture{etcd: st, c: c, clock: clk}
}

func (f *fixture) create(t *testing.T, name, label string) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	if err := f.c.Create(context.Background(), key(name), cm(name, label), nil, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) relabel(t *testing.T, name, label string) *corev1.ConfigMap {
	t.Helper()
	out := &corev1.ConfigMap{}
	err := f.c.GuaranteedUpdate(context.Background(), key(name), out, func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		cur.(*corev1.ConfigMap).Labels["k"] = label
		return cur, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func labelPred(sel string) storage.Predicate {
	return storage.Predicate{Label: labels.SelectorFromSet(labels.Set{"k": sel}), Field: fields.Everything(),
		GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
			return labels.Set(obj.(*corev1.ConfigMap).Labels), nil, nil
		}}
}

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return watch.Event{}
}

func TestConsistentListFromCache(t *testing.T) {
	f := newFixture(t, 100)
	for i := 0; i < 20; i++ {
		f.create(t, fmt.Sprintf("o%02d", i), strconv.Itoa(i%2))
	}
	// A consistent list right after the writes must include all of them.
	list := &corev1.ConfigMapList{}
	if err := f.c.List(context.Background(), prefix+"ns/", storage.ListOptions{}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 20 || list.Items[0].Name != "o00" {
		t.Fatalf("list: %d items", len(list.Items))
	}
	paged := &corev1.ConfigMapList{}
	if err := f.c.List(context.Background(), prefix, storage.ListOptions{Limit: 7, Predicate: labelPred("1")}, paged); err != nil {
		t.Fatal(err)
	}
	if len(paged.Items) != 7 || paged.Continue == "" {
		t.Fatalf("page: %d items, continue %q", len(paged.Items), paged.Continue)
	}
	rest := &corev1.ConfigMapList{}
	if err := f.c.List(context.Background(), prefix, storage.ListOptions{Limit: 7, Predicate: labelPred("1"), Continue: paged.Continue}, rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != 3 || rest.Continue != "" {
		t.Fatalf("second page: %d items, continue %q", len(rest.Items), rest.Continue)
	}
}

func TestWatchReplaysHistoryAndExpires(t *testing.T) {
	f := newFixture(t, 4)
	first := f.create(t, "a", "1")
	for i := 0; i < 6; i++ {
		f.relabel(t, "a", strconv.Itoa(i))
	}
	if _, err := f.c.Watch(context.Background(), prefix, storage.WatchOptions{ResourceVersion: first.ResourceVersion, Recursive: true}); !storage.IsCode(err, storage.ErrCodeExpired) {
		t.Fatalf("watch from a revision that left history: %v, want Expired", err)
	}
	cur := &corev1.ConfigMap{}
	if err := f.c.Get(context.Background(), key("a"), storage.GetOptions{}, cur); err != nil {
		t.Fatal(err)
	}
	rv, _ := strconv.ParseInt(cur.ResourceVersion, 10, 64)
	w, err := f.c.Watch(context.Background(), prefix, storage.WatchOptions{ResourceVersion: strconv.FormatInt(rv-2, 10), Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, want := range []string{"4", "5"} {
		ev := next(t, w)
		if ev.Type != watch.Modified || ev.Object.(*corev1.ConfigMap).Labels["k"] != want {
			t.Fatalf("replayed %v, want MODIFIED k=%s", ev, want)
		}
	}
}

func TestSelectorTransitions(t *testing.T) {
	f := newFixture(t, 100)
	w, err := f.c.Watch(context.Background(), prefix, storage.WatchOptions{ResourceVersion: "0", Recursive: true, Predicate: labelPred("yes")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	f.create(t, "a", "no")
	f.relabel(t, "a", "yes")
	if ev := next(t, w); ev.Type != watch.Added {
		t.Fatalf("moving into the selector: %v, want ADDED", ev.Type)
	}
	f.relabel(t, "a", "yes") // no-op write, no event
	left := f.relabel(t, "a", "no")
	ev := next(t, w)
	if ev.Type != watch.Deleted || ev.Object.(*corev1.ConfigMap).ResourceVersion != left.ResourceVersion {
		t.Fatalf("leaving the selector: %v, want DELETED at %s", ev, left.ResourceVersion)
	}
}

func TestBookmarksAndInitialEventsEnd(t *testing.T) {
	f := newFixture(t, 100)
	f.create(t, "a", "1")
	yes := true
	w, err := f.c.Watch(context.Background(), prefix, storage.WatchOptions{SendInitialEvents: &yes, Bookmarks: true, Recursive: true, ResourceVersion: ""})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := next(t, w); ev.Type != watch.Added {
		t.Fatalf("initial event %v", ev.Type)
	}
	ev := next(t, w)
	if ev.Type != watch.Bookmark || ev.Object.(*corev1.ConfigMap).Annotations[etcd3.InitialEventsAnnotation] != "true" {
		t.Fatalf("end of initial events: %v", ev)
	}
	b := f.create(t, "b", "1")
	if ev := next(t, w); ev.Type != watch.Added {
		t.Fatalf("live event %v", ev.Type)
	}
	f.clock.Step(time.Minute)
	ev = next(t, w)
	bm, _ := strconv.Atoi(ev.Object.(*corev1.ConfigMap).ResourceVersion)
	brv, _ := strconv.Atoi(b.ResourceVersion)
	if ev.Type != watch.Bookmark || bm < brv {
		t.Fatalf("bookmark %v at %d, want at least %d", ev.Type, bm, brv)
	}
}

func TestSlowWatcherIsClosed(t *testing.T) {
	f := newFixture(t, 2000)
	w, err := f.c.Watch(context.Background(), prefix, storage.WatchOptions{ResourceVersion: "0", Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	f.create(t, "a", "0")
	// Never read: the watch's buffer overflows and the cache closes it.
	for i := 1; i < 1100; i++ {
		f.relabel(t, "a", strconv.Itoa(i))
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("slow watcher was not closed")
		}
	}
}
