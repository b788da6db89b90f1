package etcd3_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/storage"
	"github.com/skiff/skiff/pkg/storage/etcd3"
	"github.com/skiff/skiff/pkg/storage/storagetest"
)

func cm(name string, data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"k": data}}, Data: map[string]string{"v": data}}
}

func key(name string) string { return "/registry/configmaps/ns/" + name }

func TestCreateGetConflict(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	out := &corev1.ConfigMap{}
	if err := s.Create(ctx, key("a"), cm("a", "1"), nil, out); err != nil {
		t.Fatal(err)
	}
	if out.ResourceVersion == "" {
		t.Fatal("create did not stamp a resourceVersion")
	}
	err := s.Create(ctx, key("a"), cm("a", "2"), nil, &corev1.ConfigMap{})
	if !storage.IsCode(err, storage.ErrCodeKeyExists) {
		t.Fatalf("second create: %v, want KeyExists", err)
	}
	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, key("a"), storage.GetOptions{}, got); err != nil || got.Data["v"] != "1" || got.ResourceVersion != out.ResourceVersion {
		t.Fatalf("get: %v %+v", err, got)
	}
	if err := s.Get(ctx, key("missing"), storage.GetOptions{}, got); !storage.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
}

func TestReservationsAreAtomic(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	if err := s.Create(ctx, key("a"), cm("a", "1"), []string{"/r/ip/1"}, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	err := s.Create(ctx, key("b"), cm("b", "1"), []string{"/r/ip/1"}, &corev1.ConfigMap{})
	if !storage.IsCode(err, storage.ErrCodeReservationTaken) {
		t.Fatalf("taken reservation: %v", err)
	}
	if ok, _ := s.KeyExists(ctx, key("b")); ok {
		t.Fatal("object written although its reservation failed")
	}
	// Deleting releases the reservation in the same transaction.
	err = s.Delete(ctx, key("a"), &corev1.ConfigMap{}, storage.DeleteOptions{Reservations: func(runtime.Object) []string { return []string{"/r/ip/1"} }})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.KeyExists(ctx, "/r/ip/1"); ok {
		t.Fatal("reservation survived its object")
	}
}

func TestGuaranteedUpdateUnderContention(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	if err := s.Create(ctx, key("n"), cm("n", "0"), nil, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.GuaranteedUpdate(ctx, key("n"), &corev1.ConfigMap{}, func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
					c := cur.(*corev1.ConfigMap)
					n, _ := strconv.Atoi(c.Data["v"])
					c.Data["v"] = strconv.Itoa(n + 1)
					return c, nil, nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got := &corev1.ConfigMap{}
	if err := s.Get(ctx, key("n"), storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.Data["v"] != strconv.Itoa(writers*each) {
		t.Fatalf("lost updates: counter %s, want %d", got.Data["v"], writers*each)
	}
}

func TestNoopUpdateKeepsResourceVersion(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	created := &corev1.ConfigMap{}
	if err := s.Create(ctx, key("a"), cm("a", "1"), nil, created); err != nil {
		t.Fatal(err)
	}
	out := &corev1.ConfigMap{}
	err := s.GuaranteedUpdate(ctx, key("a"), out, func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) { return cur, nil, nil })
	if err != nil || out.ResourceVersion != created.ResourceVersion {
		t.Fatalf("no-op update moved resourceVersion %s -> %s (%v)", created.ResourceVersion, out.ResourceVersion, err)
	}
}

func TestDeleteInsteadAndPrecondition(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	if err := s.Create(ctx, key("a"), cm("a", "1"), nil, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	err := s.Delete(ctx, key("a"), &corev1.ConfigMap{}, storage.DeleteOptions{Precondition: func(runtime.Object) error { return refuse }})
	if !errors.Is(err, refuse) {
		t.Fatalf("precondition: %v", err)
	}
	err = s.GuaranteedUpdate(ctx, key("a"), &corev1.ConfigMap{}, func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		return cur, nil, storage.ErrDeleteInstead
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.KeyExists(ctx, key("a")); ok {
		t.Fatal("ErrDeleteInstead did not delete")
	}
}

func TestListPaginationAndSelectors(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		if err := s.Create(ctx, key(fmt.Sprintf("o%02d", i)), cm(fmt.Sprintf("o%02d", i), strconv.Itoa(i%3)), nil, &corev1.ConfigMap{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := storage.ListOptions{Limit: 10}
	for pages := 0; ; pages++ {
		list := &corev1.ConfigMapList{}
		if err := s.List(ctx, "/registry/configmaps/ns/", opts, list); err != nil {
			t.Fatal(err)
		}
		for _, item := range list.Items {
			names = append(names, item.Name)
		}
		if list.Continue == "" {
			if pages != 2 {
				t.Fatalf("got %d pages, want 3", pages+1)
			}
			break
		}
		if pages == 0 && (list.RemainingItemCount == nil || *list.RemainingItemCount != 15) {
			t.Fatalf("remainingItemCount = %v, want 15", list.RemainingItemCount)
		}
		opts.Continue = list.Continue
	}
	if len(names) != 25 || names[0] != "o00" || names[24] != "o24" {
		t.Fatalf("paged names: %v", names)
	}
	// Filtered pages still fill up to the limit.
	sel := labels.SelectorFromSet(labels.Set{"k": "1"})
	pred := storage.Predicate{Label: sel, Field: fields.Everything(), GetAttrs: func(obj runtime.Object) (labels.Set, fields.Set, error) {
		return labels.Set(obj.(*corev1.ConfigMap).Labels), nil, nil
	}}
	list := &corev1.ConfigMapList{}
	if err := s.List(ctx, "/registry/configmaps/ns/", storage.ListOptions{Predicate: pred, Limit: 5}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 5 || list.Continue == "" {
		t.Fatalf("filtered page: %d items, continue %q", len(list.Items), list.Continue)
	}
}

func TestWatchFromRevisionAndCompaction(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	first := &corev1.ConfigMap{}
	if err := s.Create(ctx, key("a"), cm("a", "1"), nil, first); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, key("b"), cm("b", "1"), nil, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/registry/configmaps/ns/", storage.WatchOptions{ResourceVersion: first.ResourceVersion, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.ResultChan()
	if ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "b" {
		t.Fatalf("first event after %s: %v", first.ResourceVersion, ev)
	}
	w.Stop()
	if err := s.Create(ctx, key("c"), cm("c", "1"), nil, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	rev, _ := s.CurrentRevision(ctx)
	if _, err := s.Client().Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	w, err = s.Watch(ctx, "/registry/configmaps/ns/", storage.WatchOptions{ResourceVersion: first.ResourceVersion, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	ev = <-w.ResultChan()
	if st, ok := ev.Object.(*metav1.Status); ev.Type != watch.Error || !ok || st.Code != 410 {
		t.Fatalf("watch from compacted revision: %v, want 410 Gone", ev)
	}
}

func TestCompactorKeepsOneInterval(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := &corev1.ConfigMap{}
	if err := s.Create(ctx, key("a"), cm("a", "1"), nil, first); err != nil {
		t.Fatal(err)
	}
	go etcd3.RunCompactor(ctx, s.Client(), 50*time.Millisecond)
	if err := s.Create(ctx, key("b"), cm("b", "1"), nil, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rev, _ := strconv.ParseInt(first.ResourceVersion, 10, 64)
		_, err := s.Client().Get(ctx, key("a"), clientv3.WithRev(rev))
		if err != nil && strings.Contains(err.Error(), "compacted") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("history was never compacted")
}

// TestUpdateFromStaleSuggestion starts updates from an outdated copy: the
// change lands on the stored object, a precondition that only the stale
// copy fails is retried on the fresh one, and a no-op keeps the stored
// revision.
func TestUpdateFromStaleSuggestion(t *testing.T) {
	s, _ := storagetest.NewStore(t)
	ctx := context.Background()
	v1 := &corev1.ConfigMap{}
	if err := s.Create(ctx, key("a"), cm("a", "1"), nil, v1); err != nil {
		t.Fatal(err)
	}
	v2 := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdate(ctx, key("a"), v2, func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		cur.(*corev1.ConfigMap).Data["v"] = "2"
		return cur, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	appendX := func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		c := cur.(*corev1.ConfigMap)
		c.Data["v"] += "x"
		return c, nil, nil
	}
	out := &corev1.ConfigMap{}
	if err := s.GuaranteedUpdateFrom(ctx, key("a"), out, appendX, v1.DeepCopy()); err != nil || out.Data["v"] != "2x" {
		t.Fatalf("update from a stale copy: %v, data %q, want 2x", err, out.Data["v"])
	}
	// A precondition on the revision the caller read.
	wantRV := out.ResourceVersion
	precond := func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		c := cur.(*corev1.ConfigMap)
		if c.ResourceVersion != wantRV {
			return nil, nil, errors.New("conflict")
		}
		c.Data["v"] = "3"
		return c, nil, nil
	}
	if err := s.GuaranteedUpdateFrom(ctx, key("a"), out, precond, v2.DeepCopy()); err != nil || out.Data["v"] != "3" {
		t.Fatalf("precondition against a stale copy: %v, data %q", err, out.Data["v"])
	}
	// A no-op against a stale copy that happens to equal the change.
	current := out.ResourceVersion
	set3 := func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		c := cur.(*corev1.ConfigMap)
		c.Data["v"] = "3"
		return c, nil, nil
	}
	stale := v2.DeepCopy()
	stale.Data["v"] = "3"
	if err := s.GuaranteedUpdateFrom(ctx, key("a"), out, set3, stale); err != nil || out.ResourceVersion != current {
		t.Fatalf("no-op from a stale copy: %v, resourceVersion %s -> %s", err, current, out.ResourceVersion)
	}
}
