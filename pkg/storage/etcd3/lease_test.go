package etcd3

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeGrants is a leaseManager whose grants are recorded, on a fake clock.
func fakeGrants(t *testing.T) (*leaseManager, *clocktesting.FakePassiveClock, *[]int64) {
	t.Helper()
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	var granted []int64
	m := &leaseManager{
		grant: func(_ context.Context, ttl int64) (clientv3.LeaseID, error) {
			granted = append(granted, ttl)
			return clientv3.LeaseID(len(granted)), nil
		},
		clock:   clk,
		current: map[int64]*cachedLease{},
	}
	return m, clk, &granted
}

func mustLease(t *testing.T, m *leaseManager, ttl time.Duration) clientv3.LeaseID {
	t.Helper()
	id, err := m.lease(context.Background(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestReuseWindow(t *testing.T) {
	for _, tc := range []struct{ ttl, want int64 }{
		{1, 0}, {2, 0}, {19, 0}, {20, 1}, {100, 5}, {1199, 59}, {1200, 60}, {3600, 60}, {86400, 60},
	} {
		if got := reuseWindow(tc.ttl); got != tc.want {
			t.Errorf("reuseWindow(%d) = %d, want %d", tc.ttl, got, tc.want)
		}
	}
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
	}{{time.Second, 1}, {1500 * time.Millisecond, 2}, {time.Hour, 3600}} {
		if got := ttlSeconds(tc.ttl); got != tc.want {
			t.Errorf("ttlSeconds(%v) = %d, want %d", tc.ttl, got, tc.want)
		}
	}
}

// TestLeaseReuse steps through a lease's life: reused while it outlives the
// TTL by a margin, replaced once it would not.
func TestLeaseReuse(t *testing.T) {
	m, clk, granted := fakeGrants(t)
	first := mustLease(t, m, time.Hour)
	if want := []int64{3660}; !slices.Equal(*granted, want) {
		t.Fatalf("granted %v, want %v (ttl + a minute)", *granted, want)
	}
	clk.SetTime(clk.Now().Add(59 * time.Second))
	if id := mustLease(t, m, time.Hour); id != first {
		t.Fatalf("59s later got lease %d, want %d reused", id, first)
	}
	// At 60s the lease would expire exactly one TTL after this write: a
	// key must live at least the TTL, so a new lease is granted.
	clk.SetTime(clk.Now().Add(time.Second))
	second := mustLease(t, m, time.Hour)
	if second == first || len(*granted) != 2 {
		t.Fatalf("60s later got lease %d (grants %v), want a new one", second, *granted)
	}
	// Another TTL has its own lease and does not disturb this one.
	if id := mustLease(t, m, 2*time.Second); id == second {
		t.Fatal("a 2s TTL reused the 1h lease")
	}
	if id := mustLease(t, m, time.Hour); id != second {
		t.Fatalf("got lease %d, want %d reused after another TTL's grant", id, second)
	}
	// A lease etcd lost is not handed out again.
	m.forget(second)
	if id := mustLease(t, m, time.Hour); id == second {
		t.Fatal("forgotten lease handed out")
	}
}

func TestLeaseWithoutWindowIsNotReused(t *testing.T) {
	m, _, granted := fakeGrants(t)
	a, b := mustLease(t, m, 2*time.Second), mustLease(t, m, 2*time.Second)
	if a == b || !slices.Equal(*granted, []int64{2, 2}) {
		t.Fatalf("leases %d, %d, grants %v: a 2s TTL has no reuse window", a, b, *granted)
	}
}

func TestLeaseKeyLimit(t *testing.T) {
	m, _, granted := fakeGrants(t)
	for range maxKeysPerLease {
		mustLease(t, m, time.Hour)
	}
	if len(*granted) != 1 {
		t.Fatalf("%d writes took %d grants, want 1", maxKeysPerLease, len(*granted))
	}
	mustLease(t, m, time.Hour)
	if len(*granted) != 2 {
		t.Fatalf("write %d took no new lease", maxKeysPerLease+1)
	}
}

func TestLeaseGrantError(t *testing.T) {
	m, _, _ := fakeGrants(t)
	boom := errors.New("boom")
	m.grant = func(context.Context, int64) (clientv3.LeaseID, error) { return 0, boom }
	if _, err := m.lease(context.Background(), time.Minute); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the grant's error", err)
	}
	if len(m.current) != 0 {
		t.Fatal("failed grant cached")
	}
}
