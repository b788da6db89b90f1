package etcd3

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/utils/clock"
)

// Lease reuse, as upstream's lease manager does it: a write that needs a
// TTL attaches its key to the last lease granted for that TTL while the
// lease still outlives the TTL, so keys live between ttl and ttl+window
// and etcd holds a few leases rather than one per object.
const (
	// maxReuseWindow caps how long a lease is handed out (upstream: 60s).
	maxReuseWindow = 60 * time.Second
	// reuseWindowPercent is the window as a share of the TTL (upstream: 5%).
	reuseWindowPercent = 5
	// maxKeysPerLease bounds how many writes attach to one lease, so its
	// expiry deletes a bounded number of keys in one etcd transaction
	// (upstream: 1000).
	maxKeysPerLease = 1000
)

// leaseManager hands out etcd leases for TTL'd writes, reusing them. One
// is shared by every Store derived from the same New; its mutex guards
// the cache and is held across a Grant so that concurrent writers wait for
// one lease rather than granting one each.
type leaseManager struct {
	// grant asks etcd for a lease of ttl seconds.
	grant func(ctx context.Context, ttl int64) (clientv3.LeaseID, error)
	clock clock.PassiveClock

	mu sync.Mutex
	// current is the reusable lease per TTL in whole seconds.
	current map[int64]*cachedLease
}

// cachedLease is a granted lease and how long it is known to live.
type cachedLease struct {
	id clientv3.LeaseID
	// expires is when the lease expires at the earliest: the grant was
	// asked for at this time minus its TTL, and etcd starts counting later.
	expires time.Time
	// attached counts the writes the lease was handed to.
	attached int
}

func newLeaseManager(client *clientv3.Client, clk clock.PassiveClock) *leaseManager {
	return &leaseManager{
		grant: func(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
			resp, err := client.Grant(ctx, ttl)
			if err != nil {
				return 0, err
			}
			return resp.ID, nil
		},
		clock:   clk,
		current: map[int64]*cachedLease{},
	}
}

// ttlSeconds rounds ttl up to etcd's granularity of whole seconds.
func ttlSeconds(ttl time.Duration) int64 {
	return int64((ttl + time.Second - 1) / time.Second)
}

// reuseWindow is how much longer than ttl a new lease is granted for, and
// so how long it is reused: 5% of ttl, at most a minute, in whole seconds.
func reuseWindow(ttl int64) int64 {
	return min(ttl*reuseWindowPercent/100, int64(maxReuseWindow/time.Second))
}

// lease returns a lease that outlives ttl, reusing the cached one when it
// does and has room for another key, granting ttl+window otherwise.
func (m *leaseManager) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	secs := ttlSeconds(ttl)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	if c := m.current[secs]; c != nil && now.Add(time.Duration(secs)*time.Second).Before(c.expires) && c.attached < maxKeysPerLease {
		c.attached++
		return c.id, nil
	}
	granted := secs + reuseWindow(secs)
	id, err := m.grant(ctx, granted)
	if err != nil {
		return 0, fmt.Errorf("grant lease of %ds: %w", granted, err)
	}
	m.current[secs] = &cachedLease{id: id, expires: now.Add(time.Duration(granted) * time.Second), attached: 1}
	return id, nil
}

// forget stops handing out lease id, which etcd no longer has (revoked by
// hand, or lost with a restored datastore).
func (m *leaseManager) forget(id clientv3.LeaseID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for secs, c := range m.current {
		if c.id == id {
			delete(m.current, secs)
		}
	}
}
