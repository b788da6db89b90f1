package cacher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/storage"
	"github.com/skiff/skiff/pkg/storage/etcd3"
)

// Config configures a Cacher.
type Config struct {
	// Delegate serves writes and the reads the cache cannot.
	Delegate *etcd3.Store
	// Prefix is the resource's key prefix, ending in "/".
	Prefix string
	// NewObject returns an empty object of the resource (for bookmarks).
	NewObject func() runtime.Object
	// BookmarkInterval is how often watches that allow bookmarks get one;
	// default 15s.
	BookmarkInterval time.Duration
	// HistorySize is how many recent events are kept for resuming watches;
	// default 4096.
	HistorySize int
	// FreshnessTimeout bounds how long a read waits for the cache to reach
	// a revision before it falls back to etcd (or fails for watches);
	// default 3s.
	FreshnessTimeout time.Duration
	Clock            clock.WithTicker
	Log              *slog.Logger
}

func (c *Config) setDefaults() {
	if c.BookmarkInterval == 0 {
		c.BookmarkInterval = 15 * time.Second
	}
	if c.HistorySize == 0 {
		c.HistorySize = 4096
	}
	if c.FreshnessTimeout == 0 {
		c.FreshnessTimeout = 3 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// event is one change as the cache saw it.
type event struct {
	key string
	// obj is the new state, or for a deletion the last state stamped with
	// the deletion's revision; prev is the state before (nil on creation).
	obj, prev runtime.Object
	deleted   bool
	rv        int64
}

// Cacher is a storage.Store that serves lists and watches of one resource
// from memory and everything else from its delegate.
type Cacher struct {
	cfg Config

	mu sync.RWMutex
	// rv is the revision the cache reflects; every change up to it has
	// been applied and dispatched.
	rv int64
	// rvChanged is closed (and replaced) whenever rv advances.
	rvChanged chan struct{}
	ready     bool
	readyCh   chan struct{}
	objects   map[string]runtime.Object
	// history holds the latest events in a ring; histStart is the revision
	// after which every event is still in history.
	history   []*event
	histNext  int
	histLen   int
	histStart int64
	watchers  map[int64]*cacheWatcher
	nextID    int64
	watcher   clientv3.Watcher
}

var _ storage.Store = (*Cacher)(nil)

// New returns a Cacher; Run fills and maintains it.
func New(cfg Config) *Cacher {
	cfg.setDefaults()
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	return &Cacher{
		cfg:       cfg,
		rvChanged: make(chan struct{}),
		readyCh:   make(chan struct{}),
		objects:   map[string]runtime.Object{},
		history:   make([]*event, cfg.HistorySize),
		watchers:  map[int64]*cacheWatcher{},
	}
}

// Ready is closed once the cache has loaded.
func (c *Cacher) Ready() <-chan struct{} { return c.readyCh }

// Run keeps the cache in sync with etcd until ctx ends. After a watch
// failure (such as compaction) it reloads and closes every client watch,
// which then resume from their last revision.
func (c *Cacher) Run(ctx context.Context) {
	c.watcher = c.cfg.Delegate.NewWatcher()
	defer c.watcher.Close()
	// The ticker starts before the cache is ready, so a clock step after
	// readiness (tests) always reaches it.
	go c.sendBookmarks(ctx, c.cfg.Clock.NewTicker(c.cfg.BookmarkInterval))
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.syncOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		c.cfg.Log.Warn("watch cache restarting", "prefix", c.cfg.Prefix, "err", err)
		select {
		case <-ctx.Done():
		case <-c.cfg.Clock.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	c.mu.Lock()
	for _, w := range c.watchers {
		w.terminate()
	}
	c.watchers = map[int64]*cacheWatcher{}
	c.mu.Unlock()
}

// syncOnce lists the prefix and then applies its watch until it fails.
func (c *Cacher) syncOnce(ctx context.Context) error {
	client := c.cfg.Delegate.Client()
	resp, err := client.Get(ctx, c.cfg.Prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list %s: %w", c.cfg.Prefix, err)
	}
	objects := make(map[string]runtime.Object, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		obj, err := c.cfg.Delegate.Decode(kv.Value, kv.ModRevision)
		if err != nil {
			c.cfg.Log.Error("watch cache: undecodable object skipped", "key", string(kv.Key), "err", err)
			continue
		}
		objects[string(kv.Key)] = obj
	}
	rev := resp.Header.Revision
	c.mu.Lock()
	for _, w := range c.watchers {
		w.terminate()
	}
	c.watchers = map[int64]*cacheWatcher{}
	c.objects = objects
	c.histLen, c.histNext, c.histStart = 0, 0, rev
	c.advance(rev)
	if !c.ready {
		c.ready = true
		close(c.readyCh)
	}
	c.mu.Unlock()

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.watcher.Watch(wctx, c.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", c.cfg.Prefix, err)
		}
		if resp.IsProgressNotify() {
			c.mu.Lock()
			c.advance(resp.Header.Revision)
			c.mu.Unlock()
			continue
		}
		events := make([]*event, 0, len(resp.Events))
		for _, e := range resp.Events {
			ev, err := c.toEvent(e)
			if err != nil {
				c.cfg.Log.Error("watch cache: undecodable event skipped", "key", string(e.Kv.Key), "err", err)
				continue
			}
			events = append(events, ev)
		}
		c.mu.Lock()
		for _, ev := range events {
			c.apply(ev)
		}
		c.advance(resp.Header.Revision)
		c.mu.Unlock()
	}
	return errors.New("watch closed")
}

func (c *Cacher) toEvent(e *clientv3.Event) (*event, error) {
	ev := &event{key: string(e.Kv.Key), rv: e.Kv.ModRevision}
	var err error
	if e.PrevKv != nil {
		// The previous state keeps its own revision.
		if ev.prev, err = c.cfg.Delegate.Decode(e.PrevKv.Value, e.PrevKv.ModRevision); err != nil {
			return nil, err
		}
	}
	if e.Type == mvccpb.DELETE {
		ev.deleted = true
		if e.PrevKv == nil {
			return nil, errors.New("delete event without previous value")
		}
		// The deleted object carries the revision of its deletion.
		if ev.obj, err = c.cfg.Delegate.Decode(e.PrevKv.Value, e.Kv.ModRevision); err != nil {
			return nil, err
		}
		return ev, nil
	}
	if ev.obj, err = c.cfg.Delegate.Decode(e.Kv.Value, e.Kv.ModRevision); err != nil {
		return nil, err
	}
	return ev, nil
}

// apply records ev in the state and history and dispatches it. c.mu held.
func (c *Cacher) apply(ev *event) {
	if ev.deleted {
		delete(c.objects, ev.key)
	} else {
		c.objects[ev.key] = ev.obj
	}
	if c.histLen == len(c.history) {
		// The oldest event falls out; history now starts after it.
		c.histStart = c.history[c.histNext].rv
	} else {
		c.histLen++
	}
	c.history[c.histNext] = ev
	c.histNext = (c.histNext + 1) % len(c.history)
	for id, w := range c.watchers {
		if !w.wants(ev.key) {
			continue
		}
		if !w.enqueue(item{ev: ev}) {
			// Too slow: the client re-watches from its last revision.
			w.terminate()
			delete(c.watchers, id)
		}
	}
}

// advance moves rv forward and wakes readers waiting for it. c.mu held.
func (c *Cacher) advance(rev int64) {
	if rev <= c.rv {
		return
	}
	c.rv = rev
	close(c.rvChanged)
	c.rvChanged = make(chan struct{})
}

// waitFor waits until the cache reflects revision rev, asking etcd for a
// progress notification so an idle resource catches up at once.
func (c *Cacher) waitFor(ctx context.Context, rev int64) error {
	select {
	case <-c.readyCh:
	case <-ctx.Done():
		return ctx.Err()
	}
	deadline := c.cfg.Clock.After(c.cfg.FreshnessTimeout)
	asked := false
	for {
		c.mu.RLock()
		cur, changed := c.rv, c.rvChanged
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		if !asked && c.watcher != nil {
			asked = true
			_ = c.watcher.RequestProgress(clientv3.WithRequireLeader(ctx))
		}
		select {
		case <-changed:
		case <-deadline:
			return &storage.Error{Code: storage.ErrCodeTooLargeResourceVersion, Key: c.cfg.Prefix, Revision: cur, Msg: "too large resource version"}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitFresh waits until the cache reflects etcd's current revision.
func (c *Cacher) waitFresh(ctx context.Context) error {
	rev, err := c.cfg.Delegate.CurrentRevision(ctx)
	if err != nil {
		return err
	}
	return c.waitFor(ctx, rev)
}

func (c *Cacher) isReady() bool {
	select {
	case <-c.readyCh:
		return true
	default:
		return false
	}
}

// Get implements storage.Store: resourceVersion "0" is served from memory.
func (c *Cacher) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	if opts.ResourceVersion != "0" || !c.isReady() {
		return c.cfg.Delegate.Get(ctx, key, opts, out)
	}
	c.mu.RLock()
	obj, ok := c.objects[key]
	c.mu.RUnlock()
	if !ok {
		if opts.IgnoreNotFound {
			return setZero(out)
		}
		return &storage.Error{Code: storage.ErrCodeNotFound, Key: key, Msg: "not found"}
	}
	return shallowCopyInto(obj, out)
}

func setZero(out runtime.Object) error {
	v := reflect.ValueOf(out)
	v.Elem().Set(reflect.Zero(v.Elem().Type()))
	return nil
}

// shallowCopyInto copies the top-level struct of src into dst; nested
// fields stay shared and must not be modified.
func shallowCopyInto(src, dst runtime.Object) error {
	sv, dv := reflect.ValueOf(src), reflect.ValueOf(dst)
	if sv.Type() != dv.Type() {
		return fmt.Errorf("cannot copy %T into %T", src, dst)
	}
	dv.Elem().Set(sv.Elem())
	return nil
}

// Create implements storage.Store.
func (c *Cacher) Create(ctx context.Context, key string, obj runtime.Object, reservations []string, out runtime.Object) error {
	return c.cfg.Delegate.Create(ctx, key, obj, reservations, out)
}

// GuaranteedUpdate implements storage.Store. When the delegate can start
// from a cached copy (storage.SuggestingUpdater) and the cache holds the
// object, the update skips reading it first; a stale copy only costs the
// delegate a retry.
func (c *Cacher) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, tryUpdate storage.UpdateFunc) error {
	if su, ok := any(c.cfg.Delegate).(storage.SuggestingUpdater); ok && c.isReady() {
		c.mu.RLock()
		obj, found := c.objects[key]
		c.mu.RUnlock()
		if found {
			return su.GuaranteedUpdateFrom(ctx, key, out, tryUpdate, obj.DeepCopyObject())
		}
	}
	return c.cfg.Delegate.GuaranteedUpdate(ctx, key, out, tryUpdate)
}

// Delete implements storage.Store.
func (c *Cacher) Delete(ctx context.Context, key string, out runtime.Object, opts storage.DeleteOptions) error {
	return c.cfg.Delegate.Delete(ctx, key, out, opts)
}

// Count implements storage.Store.
func (c *Cacher) Count(ctx context.Context, prefix string) (int64, error) {
	return c.cfg.Delegate.Count(ctx, prefix)
}

// CurrentRevision implements storage.Store.
func (c *Cacher) CurrentRevision(ctx context.Context) (int64, error) {
	return c.cfg.Delegate.CurrentRevision(ctx)
}

// KeyExists implements storage.Store.
func (c *Cacher) KeyExists(ctx context.Context, key string) (bool, error) {
	return c.cfg.Delegate.KeyExists(ctx, key)
}

// List implements storage.Store. Lists at "0", at "" (once the cache has
// caught up with etcd) and not older than N are served from memory;
// continuations and exact revisions go to etcd.
func (c *Cacher) List(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if !c.isReady() || opts.Continue != "" || opts.ResourceVersionMatch == storage.MatchExact {
		return c.cfg.Delegate.List(ctx, prefix, opts, listObj)
	}
	switch opts.ResourceVersion {
	case "0":
	case "":
		if err := c.waitFresh(ctx); err != nil {
			return c.cfg.Delegate.List(ctx, prefix, opts, listObj)
		}
	default:
		rv, err := strconv.ParseInt(opts.ResourceVersion, 10, 64)
		if err != nil || rv < 0 {
			return &storage.Error{Code: storage.ErrCodeInvalidContinue, Key: prefix, Msg: fmt.Sprintf("invalid resource version %q", opts.ResourceVersion)}
		}
		if err := c.waitFor(ctx, rv); err != nil {
			return err
		}
	}
	type kv struct {
		key string
		obj runtime.Object
	}
	c.mu.RLock()
	rev := c.rv
	matched := make([]kv, 0, len(c.objects))
	for key, obj := range c.objects {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		ok, err := opts.Predicate.Matches(obj)
		if err != nil {
			c.mu.RUnlock()
			return err
		}
		if ok {
			matched = append(matched, kv{key, obj})
		}
	}
	c.mu.RUnlock()
	sort.Slice(matched, func(i, j int) bool { return matched[i].key < matched[j].key })

	lacc, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lacc.SetResourceVersion(strconv.FormatInt(rev, 10))
	if opts.Limit > 0 && int64(len(matched)) > opts.Limit {
		last := matched[opts.Limit-1].key
		token, err := etcd3.EncodeContinue(last+"\x00", prefix, rev)
		if err != nil {
			return err
		}
		lacc.SetContinue(token)
		if opts.Predicate.Empty() {
			remaining := int64(len(matched)) - opts.Limit
			lacc.SetRemainingItemCount(&remaining)
		}
		matched = matched[:opts.Limit]
	}
	itemsPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return err
	}
	items := reflect.ValueOf(itemsPtr).Elem()
	out := reflect.MakeSlice(items.Type(), len(matched), len(matched))
	for i, m := range matched {
		out.Index(i).Set(reflect.ValueOf(m.obj).Elem())
	}
	items.Set(out)
	return nil
}
