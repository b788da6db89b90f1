// Package etcd3 implements storage.Store on etcd's v3 API (clientv3).
//
// Objects are stored encoded with the store's codec (protobuf for k8s.io/api
// types, as upstream does) with an empty resourceVersion; on the way out the
// key's ModRevision becomes the object's resourceVersion. Writes are
// transactions that compare the key's revision, so concurrent writers never
// lose updates. Reservation keys (allocated ClusterIPs, NodePorts, ...) are
// written and removed in the same transaction as the object that owns them.
//
// A Store made with WithTTL attaches every object it writes to an etcd
// lease, so objects expire a TTL after their last write (Events); etcd then
// deletes them and every watch sees a delete like any other. Leases are
// reused across writes (see leaseManager); reservation keys never expire.
package etcd3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/storage"
)

// Store is the etcd-backed storage.Store.
type Store struct {
	client     *clientv3.Client
	codec      runtime.Codec
	newWatcher func() clientv3.Watcher
	// maxFetch bounds how many keys a filtered list fetches per round.
	maxFetch int64
	// ttl, when positive, is how long objects live after their last write.
	ttl time.Duration
	// leases is shared by every Store derived from the same New.
	leases *leaseManager
}

var _ storage.Store = (*Store)(nil)

// New returns a Store that talks to etcd through client and encodes objects
// with codec. newWatcher returns an independent watch stream (its own
// progress requests); nil uses clientv3.NewWatcher, which needs a gRPC
// connection (the embedded etcd's in-process client supplies its own).
func New(client *clientv3.Client, codec runtime.Codec, newWatcher func() clientv3.Watcher) *Store {
	if newWatcher == nil {
		newWatcher = func() clientv3.Watcher { return clientv3.NewWatcher(client) }
	}
	return &Store{client: client, codec: codec, newWatcher: newWatcher, maxFetch: 10000, leases: newLeaseManager(client, clock.RealClock{})}
}

// WithTTL returns a Store on the same etcd whose Create and GuaranteedUpdate
// attach the object's key to a lease expiring ttl (rounded up to whole
// seconds) to ttl+5% (at most a minute more) after the write, as upstream
// does for Events. Leases are shared with s and every other Store derived
// from it. A ttl of zero or less returns a Store whose objects never expire.
func (s *Store) WithTTL(ttl time.Duration) *Store {
	c := *s
	c.ttl = max(ttl, 0)
	return &c
}

// putOptions returns the options of a Put of an object: its lease, when the
// Store has a TTL. lease is the lease already picked (0: none yet), so
// retries of one write reuse it.
func (s *Store) putOptions(ctx context.Context, lease *clientv3.LeaseID) ([]clientv3.OpOption, error) {
	if s.ttl <= 0 {
		return nil, nil
	}
	if *lease == clientv3.NoLease {
		id, err := s.leases.lease(ctx, s.ttl)
		if err != nil {
			return nil, err
		}
		*lease = id
	}
	return []clientv3.OpOption{clientv3.WithLease(*lease)}, nil
}

// leaseLost makes the lease manager forget lease when etcd says it is gone,
// so the next write is granted a new one.
func (s *Store) leaseLost(lease clientv3.LeaseID, err error) {
	if lease != clientv3.NoLease && errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.leases.forget(lease)
	}
}

// Client returns the underlying etcd client.
func (s *Store) Client() *clientv3.Client { return s.client }

// NewWatcher returns a watch stream of its own, for long-lived consumers
// that request progress notifications (the watch cache).
func (s *Store) NewWatcher() clientv3.Watcher { return s.newWatcher() }

// Decode decodes a stored value and stamps it with revision rev, for
// consumers of raw etcd watch events (the watch cache).
func (s *Store) Decode(data []byte, rev int64) (runtime.Object, error) {
	return s.decode(data, rev, nil)
}

func (s *Store) decode(data []byte, rev int64, into runtime.Object) (runtime.Object, error) {
	obj, _, err := s.codec.Decode(data, nil, into)
	if err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	if err := setRV(obj, rev); err != nil {
		return nil, err
	}
	return obj, nil
}

func setRV(obj runtime.Object, rev int64) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		// Lists.
		lacc, lerr := meta.ListAccessor(obj)
		if lerr != nil {
			return fmt.Errorf("set resourceVersion: %w", err)
		}
		lacc.SetResourceVersion(strconv.FormatInt(rev, 10))
		return nil
	}
	if rev == 0 {
		acc.SetResourceVersion("")
	} else {
		acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	return nil
}

// encode stores obj without its resourceVersion (the revision is the version).
func (s *Store) encode(obj runtime.Object) ([]byte, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := acc.GetResourceVersion()
	acc.SetResourceVersion("")
	var buf bytes.Buffer
	err = s.codec.Encode(obj, &buf)
	acc.SetResourceVersion(rv)
	if err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	return buf.Bytes(), nil
}

func wrapEtcd(key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return &storage.Error{Code: storage.ErrCodeExpired, Key: key, Msg: "revision compacted", Err: err}
	}
	return &storage.Error{Code: storage.ErrCodeUnavailable, Key: key, Msg: "etcd request failed", Err: err}
}

// parseRV parses a resourceVersion ("" and "0" yield 0).
func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid resource version %q", rv)
	}
	return n, nil
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	minRV, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return &storage.Error{Code: storage.ErrCodeInvalidContinue, Key: key, Msg: err.Error()}
	}
	var getOpts []clientv3.OpOption
	if opts.ResourceVersion == "0" {
		getOpts = append(getOpts, clientv3.WithSerializable())
	}
	resp, err := s.client.Get(ctx, key, getOpts...)
	if err != nil {
		return wrapEtcd(key, err)
	}
	if minRV > 0 && resp.Header.Revision < minRV {
		return &storage.Error{Code: storage.ErrCodeTooLargeResourceVersion, Key: key, Revision: resp.Header.Revision, Msg: "too large resource version"}
	}
	if len(resp.Kvs) == 0 {
		if opts.IgnoreNotFound {
			return zero(out)
		}
		return &storage.Error{Code: storage.ErrCodeNotFound, Key: key, Msg: "not found"}
	}
	_, err = s.decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision, out)
	return err
}

func zero(out runtime.Object) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer {
		return fmt.Errorf("out must be a pointer, got %T", out)
	}
	v.Elem().Set(reflect.Zero(v.Elem().Type()))
	return nil
}

// Create implements storage.Store.
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object, reservations []string, out runtime.Object) error {
	data, err := s.encode(obj)
	if err != nil {
		return err
	}
	var lease clientv3.LeaseID
	putOpts, err := s.putOptions(ctx, &lease)
	if err != nil {
		return wrapEtcd(key, err)
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	ops := []clientv3.Op{clientv3.OpPut(key, string(data), putOpts...)}
	for _, r := range reservations {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(r), "=", 0))
		ops = append(ops, clientv3.OpPut(r, key))
	}
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		s.leaseLost(lease, err)
		return wrapEtcd(key, err)
	}
	if !resp.Succeeded {
		if ok, err := s.KeyExists(ctx, key); err != nil {
			return err
		} else if ok {
			return &storage.Error{Code: storage.ErrCodeKeyExists, Key: key, Msg: "already exists"}
		}
		for _, r := range reservations {
			if ok, err := s.KeyExists(ctx, r); err != nil {
				return err
			} else if ok {
				return &storage.Error{Code: storage.ErrCodeReservationTaken, Key: r, Msg: "reservation already taken"}
			}
		}
		return &storage.Error{Code: storage.ErrCodeConflict, Key: key, Msg: "concurrent create, try again"}
	}
	_, err = s.decode(data, resp.Header.Revision, out)
	return err
}

// KeyExists implements storage.Store.
func (s *Store) KeyExists(ctx context.Context, key string) (bool, error) {
	resp, err := s.client.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return false, wrapEtcd(key, err)
	}
	return resp.Count > 0, nil
}

// Count implements storage.Store.
func (s *Store) Count(ctx context.Context, prefix string) (int64, error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, wrapEtcd(prefix, err)
	}
	return resp.Count, nil
}

// CurrentRevision implements storage.Store.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	// A count-only read of a key that never exists costs nothing and
	// carries the cluster's revision in its header.
	resp, err := s.client.Get(ctx, "/registry/\x00revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, wrapEtcd("", err)
	}
	return resp.Header.Revision, nil
}

// GuaranteedUpdate implements storage.Store.
func (s *Store) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, tryUpdate storage.UpdateFunc) error {
	return s.GuaranteedUpdateFrom(ctx, key, out, tryUpdate, nil)
}

// GuaranteedUpdateFrom is GuaranteedUpdate starting from suggestion, a
// private copy of the object as a cache last saw it (nil: read it), which
// saves a read when the cache is current. A stale suggestion costs a
// retry: the compare-and-swap fails, or, when tryUpdate fails or changes
// nothing, the current object is read and tryUpdate runs again on it.
func (s *Store) GuaranteedUpdateFrom(ctx context.Context, key string, out runtime.Object, tryUpdate storage.UpdateFunc, suggestion runtime.Object) error {
	var (
		kvValue   []byte
		kvRev     int64
		found     bool
		current   runtime.Object
		suggested = suggestion != nil
		lease     clientv3.LeaseID
		err       error
	)
	load := func(resp *etcdserverpb.RangeResponse) error {
		found = len(resp.Kvs) > 0
		if found {
			kvValue, kvRev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		return nil
	}
	read := func() error {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return wrapEtcd(key, err)
		}
		return load((*etcdserverpb.RangeResponse)(resp))
	}
	if suggested {
		current = suggestion
		if kvRev, err = rvOf(suggestion); err != nil {
			return err
		}
		if kvValue, err = s.encode(suggestion); err != nil {
			return err
		}
		found = true
	} else if err := read(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if !found {
			return &storage.Error{Code: storage.ErrCodeNotFound, Key: key, Msg: "not found"}
		}
		if !suggested {
			if current, err = s.decode(kvValue, kvRev, reflect.New(reflect.TypeOf(out).Elem()).Interface().(runtime.Object)); err != nil {
				return err
			}
		}
		updated, resv, err := tryUpdate(current)
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", kvRev))
		deleting := errors.Is(err, storage.ErrDeleteInstead)
		if err != nil && !deleting {
			if suggested {
				// Perhaps only the suggestion was stale.
				suggested = false
				if err := read(); err != nil {
					return err
				}
				continue
			}
			return err
		}
		var data []byte
		if deleting {
			ops = append(ops, clientv3.OpDelete(key))
		} else {
			data, err = s.encode(updated)
			if err != nil {
				return err
			}
			if bytes.Equal(data, kvValue) && (resv == nil || len(resv.Add)+len(resv.Remove) == 0) {
				if suggested {
					// Unchanged against a copy that may be stale:
					// check against the stored object.
					suggested = false
					if err := read(); err != nil {
						return err
					}
					continue
				}
				// Nothing changed: keep the revision, as upstream does.
				_, err = s.decode(kvValue, kvRev, out)
				return err
			}
			// Every write of a TTL'd object restarts its TTL, as upstream.
			putOpts, err := s.putOptions(ctx, &lease)
			if err != nil {
				return wrapEtcd(key, err)
			}
			ops = append(ops, clientv3.OpPut(key, string(data), putOpts...))
		}
		if resv != nil {
			for _, r := range resv.Add {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(r), "=", 0))
				ops = append(ops, clientv3.OpPut(r, key))
			}
			for _, r := range resv.Remove {
				ops = append(ops, clientv3.OpDelete(r))
			}
		}
		txn, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			s.leaseLost(lease, err)
			return wrapEtcd(key, err)
		}
		if txn.Succeeded {
			if deleting {
				if updated == nil {
					updated = current
				}
				if err := setRV(updated, txn.Header.Revision); err != nil {
					return err
				}
				return copyInto(updated, out)
			}
			_, err = s.decode(data, txn.Header.Revision, out)
			return err
		}
		getResp := txn.Responses[0].GetResponseRange()
		if resv != nil && len(resv.Add) > 0 && len(getResp.Kvs) > 0 && getResp.Kvs[0].ModRevision == kvRev {
			// The object did not move, so a reservation is taken.
			for _, r := range resv.Add {
				if ok, err := s.KeyExists(ctx, r); err != nil {
					return err
				} else if ok {
					return &storage.Error{Code: storage.ErrCodeReservationTaken, Key: r, Msg: "reservation already taken"}
				}
			}
		}
		suggested = false
		if err := load(getResp); err != nil {
			return err
		}
		if attempt > 100 {
			return &storage.Error{Code: storage.ErrCodeConflict, Key: key, Msg: "too many concurrent updates"}
		}
	}
}

func copyInto(src, dst runtime.Object) error {
	sv, dv := reflect.ValueOf(src), reflect.ValueOf(dst)
	if sv.Type() != dv.Type() {
		return fmt.Errorf("cannot copy %T into %T", src, dst)
	}
	dv.Elem().Set(sv.Elem())
	return nil
}

// Delete implements storage.Store as a compare-and-swap deletion of the
// revision the precondition saw.
func (s *Store) Delete(ctx context.Context, key string, out runtime.Object, opts storage.DeleteOptions) error {
	return s.GuaranteedUpdate(ctx, key, out, func(current runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		if opts.Precondition != nil {
			if err := opts.Precondition(current); err != nil {
				return nil, nil, err
			}
		}
		change := &storage.ReservationChange{}
		if opts.Reservations != nil {
			change.Remove = opts.Reservations(current)
		}
		return current, change, storage.ErrDeleteInstead
	})
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	itemsPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return err
	}
	items := reflect.ValueOf(itemsPtr).Elem()
	elemType := items.Type().Elem()
	if elemType.Kind() == reflect.Pointer {
		return fmt.Errorf("list items of %T must not be pointers", listObj)
	}

	var rev int64
	start := prefix
	switch {
	case opts.Continue != "":
		r, startKey, err := decodeContinue(opts.Continue, prefix)
		if err != nil {
			return &storage.Error{Code: storage.ErrCodeInvalidContinue, Key: prefix, Msg: err.Error()}
		}
		rev, start = r, startKey
	case opts.ResourceVersionMatch == storage.MatchExact:
		rev, err = parseRV(opts.ResourceVersion)
		if err != nil || rev == 0 {
			return &storage.Error{Code: storage.ErrCodeInvalidContinue, Key: prefix, Msg: "resourceVersionMatch=Exact needs a non-zero resourceVersion"}
		}
	}
	minRV := int64(0)
	if rev == 0 {
		if minRV, err = parseRV(opts.ResourceVersion); err != nil {
			return &storage.Error{Code: storage.ErrCodeInvalidContinue, Key: prefix, Msg: err.Error()}
		}
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	limit := opts.Limit
	fetch := limit
	if fetch > 0 && !opts.Predicate.Empty() {
		fetch = max(fetch, 100)
	}
	var (
		lastKey   []byte
		more      bool
		remaining int64
		readRev   int64
	)
	for {
		getOpts := []clientv3.OpOption{clientv3.WithRange(end)}
		if rev > 0 {
			getOpts = append(getOpts, clientv3.WithRev(rev))
		}
		if fetch > 0 {
			getOpts = append(getOpts, clientv3.WithLimit(fetch))
		}
		if opts.ResourceVersion == "0" && rev == 0 {
			getOpts = append(getOpts, clientv3.WithSerializable())
		}
		resp, err := s.client.Get(ctx, start, getOpts...)
		if err != nil {
			return wrapEtcd(prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			if minRV > rev {
				return &storage.Error{Code: storage.ErrCodeTooLargeResourceVersion, Key: prefix, Revision: rev, Msg: "too large resource version"}
			}
		}
		readRev = rev
		more = resp.More
		remaining = resp.Count - int64(len(resp.Kvs))
		for i, kv := range resp.Kvs {
			if limit > 0 && int64(items.Len()) >= limit {
				more = true
				remaining = resp.Count - int64(i)
				break
			}
			items.Set(reflect.Append(items, reflect.Zero(elemType)))
			elem := items.Index(items.Len() - 1).Addr().Interface().(runtime.Object)
			if _, err := s.decode(kv.Value, kv.ModRevision, elem); err != nil {
				return fmt.Errorf("%s: %w", kv.Key, err)
			}
			ok, err := opts.Predicate.Matches(elem)
			if err != nil {
				return err
			}
			if !ok {
				items.Set(items.Slice(0, items.Len()-1))
			}
			lastKey = kv.Key
		}
		if !more || (limit > 0 && int64(items.Len()) >= limit) || len(resp.Kvs) == 0 {
			break
		}
		start = string(lastKey) + "\x00"
		if fetch < s.maxFetch {
			fetch *= 2
		}
	}
	if err := setRV(listObj, readRev); err != nil {
		return err
	}
	lacc, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	if more && limit > 0 && lastKey != nil {
		next := string(lastKey) + "\x00"
		token, err := encodeContinue(next, prefix, readRev)
		if err != nil {
			return err
		}
		lacc.SetContinue(token)
		if opts.Predicate.Empty() && remaining > 0 {
			lacc.SetRemainingItemCount(&remaining)
		}
	}
	return nil
}

// compactor periodically compacts etcd's history, keeping at least one
// interval of revisions for watches and continue tokens to resume from.
type compactor struct {
	client   *clientv3.Client
	interval time.Duration
}

// RunCompactor compacts etcd's history every interval until ctx ends: each
// tick compacts up to the revision seen at the previous tick, so history
// always covers at least one interval. Several servers sharing one etcd
// may each run it; compacting an already compacted revision is harmless.
func RunCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration) {
	c := compactor{client: client, interval: interval}
	c.run(ctx)
}

func (c compactor) run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := c.client.Get(ctx, "/registry/\x00revision", clientv3.WithCountOnly())
		if err != nil {
			continue
		}
		if prev > 0 {
			if _, err := c.client.Compact(ctx, prev); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
				continue
			}
		}
		prev = resp.Header.Revision
	}
}

// eventKind tells the type of an etcd event after filtering.
func isCreate(ev *clientv3.Event) bool {
	return ev.Type == mvccpb.PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision
}

// rvOf reads an object's resourceVersion as a revision.
func rvOf(obj runtime.Object) (int64, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return 0, err
	}
	rev, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("suggested object's resourceVersion %q: %w", m.GetResourceVersion(), err)
	}
	return rev, nil
}
