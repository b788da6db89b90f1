package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestInformerSeesEveryChangeOnceInOrder runs a client-go shared informer
// while configmaps are created, updated and deleted, and checks that its
// handlers saw every change exactly once, in order, and that the lister ends
// up with the final state.
func TestInformerSeesEveryChangeOnceInOrder(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	cs := c.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns, objects, updates = "default", 50, 10

	var mu sync.Mutex
	seen := map[string][]int{} // name -> sequence of "n" values observed
	deleted := map[string]int{}
	record := func(obj interface{}) {
		cm := obj.(*corev1.ConfigMap)
		n, _ := strconv.Atoi(cm.Data["n"])
		mu.Lock()
		seen[cm.Name] = append(seen[cm.Name], n)
		mu.Unlock()
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps()
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj interface{}) { record(obj) },
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			mu.Lock()
			deleted[obj.(*corev1.ConfigMap).Name]++
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		t.Fatal("informer did not sync")
	}

	var wg sync.WaitGroup
	for i := 0; i < objects; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("cm-%03d", i)
			cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"n": "0"}}, metav1.CreateOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			for n := 1; n <= updates; n++ {
				cm.Data["n"] = strconv.Itoa(n)
				if cm, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
			if i%2 == 0 {
				if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
					t.Error(err)
				}
			}
		}(i)
	}
	wg.Wait()

	framework.Eventually(t, 20*time.Second, "informer to see every change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < objects; i++ {
			name := fmt.Sprintf("cm-%03d", i)
			if len(seen[name]) < updates+1 || (i%2 == 0 && deleted[name] < 1) {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // let any duplicate arrive before checking
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < objects; i++ {
		name := fmt.Sprintf("cm-%03d", i)
		got := seen[name]
		if len(got) != updates+1 {
			t.Errorf("%s: saw %d changes %v, want %d", name, len(got), got, updates+1)
			continue
		}
		for n, v := range got {
			if v != n {
				t.Errorf("%s: changes out of order: %v", name, got)
				break
			}
		}
		wantDeleted := 0
		if i%2 == 0 {
			wantDeleted = 1
		}
		if deleted[name] != wantDeleted {
			t.Errorf("%s: %d deletes seen, want %d", name, deleted[name], wantDeleted)
		}
		_, err := inf.Lister().ConfigMaps(ns).Get(name)
		if (err == nil) != (i%2 == 1) {
			t.Errorf("%s: lister presence wrong: %v", name, err)
		}
	}
}

// TestWatchResumesAtBookmarkWithoutLossOrDuplicates writes a steady stream
// of updates while a watcher repeatedly stops at a BOOKMARK and resumes from
// its resourceVersion; every update must arrive exactly once, in order.
func TestWatchResumesAtBookmarkWithoutLossOrDuplicates(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{ExtraArgs: []string{"--watch-bookmark-interval=500ms"}})
	cs := c.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms := cs.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counter"}, Data: map[string]string{"n": "0"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	startRV := cm.ResourceVersion

	// Writer: one update every 10ms until stopped.
	written := make(chan int, 1)
	stopWriter := make(chan struct{})
	go func() {
		n := 0
		defer func() { written <- n }()
		for {
			select {
			case <-stopWriter:
				return
			case <-time.After(10 * time.Millisecond):
			}
			cm.Data["n"] = strconv.Itoa(n + 1)
			next, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
			if err != nil {
				t.Errorf("update: %v", err)
				return
			}
			cm = next
			n++
		}
	}()

	var got []int
	rv := startRV
	bookmarks := 0
	for bookmarks < 2 {
		w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true, FieldSelector: "metadata.name=counter"})
		if err != nil {
			t.Fatal(err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Bookmark {
				rv = ev.Object.(*corev1.ConfigMap).ResourceVersion
				bookmarks++
				break
			}
			if ev.Type != watch.Modified {
				t.Fatalf("unexpected event %s %v", ev.Type, ev.Object)
			}
			obj := ev.Object.(*corev1.ConfigMap)
			n, _ := strconv.Atoi(obj.Data["n"])
			got = append(got, n)
			rv = obj.ResourceVersion
		}
		w.Stop()
	}
	close(stopWriter)
	total := <-written
	// Drain what happened after the last bookmark.
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, FieldSelector: "metadata.name=counter"})
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for len(got) < total {
		select {
		case ev := <-w.ResultChan():
			n, _ := strconv.Atoi(ev.Object.(*corev1.ConfigMap).Data["n"])
			got = append(got, n)
		case <-timeout:
			t.Fatalf("got %d of %d updates", len(got), total)
		}
	}
	w.Stop()
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("update %d arrived as %d (lost or duplicated); sequence %v", i+1, n, got)
		}
	}
	t.Logf("%d updates across %d bookmark resumes, none lost or duplicated", total, bookmarks)
}
