package etcd3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/storage"
)

// InitialEventsAnnotation marks the BOOKMARK that ends the initial events of
// a watch started with sendInitialEvents=true.
const InitialEventsAnnotation = "k8s.io/initial-events-end"

// resultBuffer bounds how many decoded events wait for a slow consumer
// before the watch stops reading etcd (etcd then buffers for us).
const resultBuffer = 100

type watcher struct {
	store  *Store
	key    string
	opts   storage.WatchOptions
	cancel context.CancelFunc
	result chan watch.Event
	done   chan struct{}
	once   sync.Once
}

// Watch implements storage.Store.
func (s *Store) Watch(ctx context.Context, key string, opts storage.WatchOptions) (watch.Interface, error) {
	rev, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, &storage.Error{Code: storage.ErrCodeInvalidContinue, Key: key, Msg: err.Error()}
	}
	initial := rev == 0
	if opts.SendInitialEvents != nil {
		initial = *opts.SendInitialEvents
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{store: s, key: key, opts: opts, cancel: cancel, result: make(chan watch.Event, resultBuffer), done: make(chan struct{})}
	var initialObjs []runtime.Object
	if initial {
		// Read the state to replay at one revision, then stream from the next.
		getOpts := []clientv3.OpOption{}
		if opts.Recursive {
			getOpts = append(getOpts, clientv3.WithPrefix())
		}
		resp, err := s.client.Get(ctx, key, getOpts...)
		if err != nil {
			cancel()
			return nil, wrapEtcd(key, err)
		}
		if rev > resp.Header.Revision {
			cancel()
			return nil, &storage.Error{Code: storage.ErrCodeTooLargeResourceVersion, Key: key, Revision: resp.Header.Revision, Msg: "too large resource version"}
		}
		for _, kv := range resp.Kvs {
			obj, err := s.decode(kv.Value, kv.ModRevision, nil)
			if err != nil {
				cancel()
				return nil, err
			}
			if ok, err := opts.Predicate.Matches(obj); err != nil {
				cancel()
				return nil, err
			} else if ok {
				initialObjs = append(initialObjs, obj)
			}
		}
		rev = resp.Header.Revision
	}
	go w.run(ctx, rev, initialObjs, initial && opts.SendInitialEvents != nil && *opts.SendInitialEvents)
	return w, nil
}

func (w *watcher) Stop() {
	w.once.Do(func() {
		w.cancel()
	})
}

func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

func (w *watcher) send(ctx context.Context, ev watch.Event) bool {
	select {
	case w.result <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *watcher) bookmark(rev int64, endOfInitial bool) (watch.Event, error) {
	if w.opts.NewObject == nil {
		return watch.Event{}, errors.New("bookmark needs NewObject")
	}
	obj := w.opts.NewObject()
	acc, err := meta.Accessor(obj)
	if err != nil {
		return watch.Event{}, err
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	if endOfInitial {
		acc.SetAnnotations(map[string]string{InitialEventsAnnotation: "true"})
	}
	return watch.Event{Type: watch.Bookmark, Object: obj}, nil
}

func (w *watcher) run(ctx context.Context, rev int64, initial []runtime.Object, endBookmark bool) {
	defer close(w.result)
	defer w.cancel()
	for _, obj := range initial {
		if !w.send(ctx, watch.Event{Type: watch.Added, Object: obj}) {
			return
		}
	}
	if endBookmark {
		ev, err := w.bookmark(rev, true)
		if err != nil {
			w.sendError(ctx, err)
			return
		}
		if !w.send(ctx, ev) {
			return
		}
	}
	opts := []clientv3.OpOption{clientv3.WithRev(rev + 1), clientv3.WithPrevKV(), clientv3.WithProgressNotify()}
	if w.opts.Recursive {
		opts = append(opts, clientv3.WithPrefix())
	}
	wch := w.store.client.Watch(clientv3.WithRequireLeader(ctx), w.key, opts...)
	for resp := range wch {
		if resp.CompactRevision != 0 {
			w.sendStatus(ctx, expired(resp.CompactRevision))
			return
		}
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				w.sendStatus(ctx, expired(resp.CompactRevision))
			} else if ctx.Err() == nil {
				w.sendError(ctx, err)
			}
			return
		}
		if resp.IsProgressNotify() {
			if w.opts.Bookmarks {
				ev, err := w.bookmark(resp.Header.Revision, false)
				if err == nil && !w.send(ctx, ev) {
					return
				}
			}
			continue
		}
		for _, e := range resp.Events {
			ev, ok, err := w.transform(e)
			if err != nil {
				w.sendError(ctx, err)
				return
			}
			if ok && !w.send(ctx, ev) {
				return
			}
		}
	}
}

// transform turns an etcd event into the watch event the client should see:
// an object moving into the selector is ADDED, out of it DELETED.
func (w *watcher) transform(e *clientv3.Event) (watch.Event, bool, error) {
	var cur, prev runtime.Object
	var err error
	if e.Type == mvccpb.PUT {
		if cur, err = w.store.decode(e.Kv.Value, e.Kv.ModRevision, nil); err != nil {
			return watch.Event{}, false, err
		}
	}
	if e.PrevKv != nil && !isCreate(e) {
		// prev carries the revision of the change that removes it from view.
		if prev, err = w.store.decode(e.PrevKv.Value, e.Kv.ModRevision, nil); err != nil {
			return watch.Event{}, false, err
		}
	}
	curOK, prevOK := false, false
	if cur != nil {
		if curOK, err = w.opts.Predicate.Matches(cur); err != nil {
			return watch.Event{}, false, err
		}
	}
	if prev != nil {
		if prevOK, err = w.opts.Predicate.Matches(prev); err != nil {
			return watch.Event{}, false, err
		}
	}
	switch {
	case e.Type == mvccpb.DELETE:
		if prev == nil || !prevOK {
			return watch.Event{}, false, nil
		}
		return watch.Event{Type: watch.Deleted, Object: prev}, true, nil
	case curOK && prevOK:
		return watch.Event{Type: watch.Modified, Object: cur}, true, nil
	case curOK:
		return watch.Event{Type: watch.Added, Object: cur}, true, nil
	case prevOK:
		return watch.Event{Type: watch.Deleted, Object: prev}, true, nil
	}
	return watch.Event{}, false, nil
}

func expired(compactRev int64) *metav1.Status {
	msg := "The resourceVersion for the provided watch is too old."
	if compactRev > 0 {
		msg = fmt.Sprintf("too old resource version (compacted at %d)", compactRev)
	}
	return &metav1.Status{
		Status:  metav1.StatusFailure,
		Message: msg,
		Reason:  metav1.StatusReasonExpired,
		Code:    http.StatusGone,
	}
}

func (w *watcher) sendStatus(ctx context.Context, st *metav1.Status) {
	w.send(ctx, watch.Event{Type: watch.Error, Object: st})
}

func (w *watcher) sendError(ctx context.Context, err error) {
	w.sendStatus(ctx, &metav1.Status{
		Status:  metav1.StatusFailure,
		Message: err.Error(),
		Reason:  metav1.StatusReasonInternalError,
		Code:    http.StatusInternalServerError,
	})
}
