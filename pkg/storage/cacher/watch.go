package cacher

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/storage"
	"github.com/skiff/skiff/pkg/storage/etcd3"
)

// watcherBuffer is how many events may wait for a client watch before the
// watch is closed as too slow (the client resumes from its last revision).
const watcherBuffer = 1024

// item is what the cache hands a client watch: an event or a bookmark.
type item struct {
	ev *event
	// bookmark, when non-zero, is a BOOKMARK at this revision.
	bookmark int64
}

type cacheWatcher struct {
	key       string
	recursive bool
	pred      storage.Predicate
	bookmarks bool
	newObject func() runtime.Object

	input  chan item
	result chan watch.Event
	done   chan struct{}
	// stopOnce guards done; termOnce guards input.
	stopOnce, termOnce sync.Once
	cacher             *Cacher
	id                 int64
}

func (w *cacheWatcher) wants(key string) bool {
	if w.recursive {
		return strings.HasPrefix(key, w.key)
	}
	return key == w.key
}

// enqueue hands w an item without blocking; false means w is too slow.
func (w *cacheWatcher) enqueue(it item) bool {
	select {
	case w.input <- it:
		return true
	default:
		return false
	}
}

// terminate ends the watch from the cache's side. c.mu held.
func (w *cacheWatcher) terminate() {
	w.termOnce.Do(func() { close(w.input) })
}

// Stop implements watch.Interface.
func (w *cacheWatcher) Stop() {
	w.stopOnce.Do(func() {
		close(w.done)
		c := w.cacher
		c.mu.Lock()
		if c.watchers[w.id] == w {
			delete(c.watchers, w.id)
			w.terminate()
		}
		c.mu.Unlock()
	})
}

// ResultChan implements watch.Interface.
func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

// Watch implements storage.Store.
func (c *Cacher) Watch(ctx context.Context, key string, opts storage.WatchOptions) (watch.Interface, error) {
	select {
	case <-c.readyCh:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var rv int64
	if opts.ResourceVersion != "" {
		var err error
		if rv, err = strconv.ParseInt(opts.ResourceVersion, 10, 64); err != nil || rv < 0 {
			return nil, &storage.Error{Code: storage.ErrCodeInvalidContinue, Key: key, Msg: "invalid resource version " + strconv.Quote(opts.ResourceVersion)}
		}
	}
	initial := rv == 0
	if opts.SendInitialEvents != nil {
		initial = *opts.SendInitialEvents
	}
	// Unset resourceVersion means "most recent": catch up with etcd first.
	if opts.ResourceVersion == "" {
		if err := c.waitFresh(ctx); err != nil {
			return nil, err
		}
	} else if rv > 0 {
		if err := c.waitFor(ctx, rv); err != nil {
			return nil, err
		}
	}
	w := &cacheWatcher{
		key:       key,
		recursive: opts.Recursive,
		pred:      opts.Predicate,
		bookmarks: opts.Bookmarks,
		newObject: opts.NewObject,
		input:     make(chan item, watcherBuffer),
		result:    make(chan watch.Event),
		done:      make(chan struct{}),
		cacher:    c,
	}
	if w.newObject == nil {
		w.newObject = c.cfg.NewObject
	}
	var backlog []*event
	var startRV int64
	c.mu.Lock()
	startRV = c.rv
	switch {
	case initial:
		keys := make([]string, 0)
		for k := range c.objects {
			if w.wants(k) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			backlog = append(backlog, &event{key: k, obj: c.objects[k], rv: startRV})
		}
	case rv < c.histStart:
		start := c.histStart
		c.mu.Unlock()
		return nil, &storage.Error{Code: storage.ErrCodeExpired, Key: key, Revision: start, Msg: fmt.Sprintf("too old resource version: %d (%d)", rv, start)}
	default:
		backlog = c.historySince(rv, w)
	}
	c.nextID++
	w.id = c.nextID
	c.watchers[w.id] = w
	c.mu.Unlock()

	endBookmark := int64(0)
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		endBookmark = startRV
	}
	go w.run(ctx, backlog, initial, endBookmark)
	return w, nil
}

// historySince returns the events after rv that w wants. c.mu held.
func (c *Cacher) historySince(rv int64, w *cacheWatcher) []*event {
	var out []*event
	n := len(c.history)
	start := (c.histNext - c.histLen + n) % n
	for i := 0; i < c.histLen; i++ {
		ev := c.history[(start+i)%n]
		if ev.rv > rv && w.wants(ev.key) {
			out = append(out, ev)
		}
	}
	return out
}

// run delivers the backlog (initial state or replayed history), then live
// events, converting each through the watch's predicate.
func (w *cacheWatcher) run(ctx context.Context, backlog []*event, initial bool, endBookmark int64) {
	defer close(w.result)
	defer w.Stop()
	for _, ev := range backlog {
		var out watch.Event
		var ok bool
		if initial {
			out, ok = w.initialEvent(ev)
		} else {
			out, ok = w.convert(ev)
		}
		if ok && !w.send(ctx, out) {
			return
		}
	}
	if endBookmark > 0 {
		if !w.send(ctx, w.bookmarkEvent(endBookmark, true)) {
			return
		}
	}
	for {
		select {
		case it, open := <-w.input:
			if !open {
				return
			}
			if it.bookmark > 0 {
				if !w.send(ctx, w.bookmarkEvent(it.bookmark, false)) {
					return
				}
				continue
			}
			if out, ok := w.convert(it.ev); ok && !w.send(ctx, out) {
				return
			}
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (w *cacheWatcher) send(ctx context.Context, ev watch.Event) bool {
	select {
	case w.result <- ev:
		return true
	case <-w.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (w *cacheWatcher) initialEvent(ev *event) (watch.Event, bool) {
	ok, err := w.pred.Matches(ev.obj)
	if err != nil {
		return errorEvent(err), true
	}
	return watch.Event{Type: watch.Added, Object: ev.obj}, ok
}

// convert applies the predicate to an event: an object moving into the
// selection is ADDED, out of it DELETED.
func (w *cacheWatcher) convert(ev *event) (watch.Event, bool) {
	curOK, prevOK := false, false
	var err error
	if !ev.deleted {
		if curOK, err = w.pred.Matches(ev.obj); err != nil {
			return errorEvent(err), true
		}
	}
	if ev.prev != nil {
		if prevOK, err = w.pred.Matches(ev.prev); err != nil {
			return errorEvent(err), true
		}
	}
	switch {
	case ev.deleted && prevOK:
		return watch.Event{Type: watch.Deleted, Object: ev.obj}, true
	case ev.deleted:
		return watch.Event{}, false
	case curOK && prevOK:
		return watch.Event{Type: watch.Modified, Object: ev.obj}, true
	case curOK:
		return watch.Event{Type: watch.Added, Object: ev.obj}, true
	case prevOK:
		// Leaving the selection: report the new state's revision on the
		// previous state, as a deletion.
		gone := ev.prev.DeepCopyObject()
		if acc, err := meta.Accessor(gone); err == nil {
			acc.SetResourceVersion(strconv.FormatInt(ev.rv, 10))
		}
		return watch.Event{Type: watch.Deleted, Object: gone}, true
	}
	return watch.Event{}, false
}

func (w *cacheWatcher) bookmarkEvent(rv int64, endOfInitial bool) watch.Event {
	obj := w.newObject()
	if acc, err := meta.Accessor(obj); err == nil {
		acc.SetResourceVersion(strconv.FormatInt(rv, 10))
		if endOfInitial {
			acc.SetAnnotations(map[string]string{etcd3.InitialEventsAnnotation: "true"})
		}
	}
	return watch.Event{Type: watch.Bookmark, Object: obj}
}

func errorEvent(err error) watch.Event {
	return watch.Event{Type: watch.Error, Object: &metav1.Status{
		Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonInternalError, Code: http.StatusInternalServerError,
	}}
}

// sendBookmarks gives every watch that allows bookmarks one per interval.
func (c *Cacher) sendBookmarks(ctx context.Context, t clock.Ticker) {
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		c.mu.RLock()
		rv := c.rv
		for _, w := range c.watchers {
			if w.bookmarks {
				// A full buffer just skips this bookmark.
				w.enqueue(item{bookmark: rv})
			}
		}
		c.mu.RUnlock()
	}
}
