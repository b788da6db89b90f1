package etcd3_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/storage"
	"github.com/skiff/skiff/pkg/storage/storagetest"
)

// leaseOf returns the lease key is attached to (0: none).
func leaseOf(t *testing.T, c *clientv3.Client, key string) clientv3.LeaseID {
	t.Helper()
	resp, err := c.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v (%d keys)", key, err, len(resp.Kvs))
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

func relabel(v string) storage.UpdateFunc {
	return func(cur runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		c := cur.(*corev1.ConfigMap).DeepCopy()
		c.Data["v"] = v
		return c, nil, nil
	}
}

// TestTTLAttachesReusedLeases writes through a Store with a TTL: objects
// get a lease of about the TTL, updates keep one, many writes share one
// lease, and reservation keys and the TTL-less parent Store get none.
func TestTTLAttachesReusedLeases(t *testing.T) {
	plain, _ := storagetest.NewStore(t)
	s := plain.WithTTL(time.Hour)
	ctx := context.Background()
	client := s.Client()

	if err := s.Create(ctx, key("a"), cm("a", "1"), []string{"/r/a"}, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	lease := leaseOf(t, client, key("a"))
	if lease == clientv3.NoLease {
		t.Fatal("created object has no lease")
	}
	ttl, err := client.TimeToLive(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	// An hour plus upstream's reuse window of a minute.
	if ttl.GrantedTTL != 3660 || ttl.TTL < 3600 || ttl.TTL > 3660 {
		t.Fatalf("lease granted %ds with %ds left, want 3660s and between 3600s and 3660s", ttl.GrantedTTL, ttl.TTL)
	}
	if l := leaseOf(t, client, "/r/a"); l != clientv3.NoLease {
		t.Fatalf("reservation key got lease %x", l)
	}

	// The parent Store is unchanged.
	if err := plain.Create(ctx, key("forever"), cm("forever", "1"), nil, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	if l := leaseOf(t, client, key("forever")); l != clientv3.NoLease {
		t.Fatalf("object written without a TTL got lease %x", l)
	}
	// An update restarts the TTL: the object moves to the current lease
	// even when it was written without one.
	for _, k := range []string{"a", "forever"} {
		if err := s.GuaranteedUpdate(ctx, key(k), &corev1.ConfigMap{}, relabel("2")); err != nil {
			t.Fatal(err)
		}
		if l := leaseOf(t, client, key(k)); l != lease {
			t.Fatalf("updated %s has lease %x, want %x", k, l, lease)
		}
	}

	// Many writes, from several goroutines, share one lease.
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		go func() {
			name := fmt.Sprintf("many-%d", i)
			errs <- s.Create(ctx, key(name), cm(name, "1"), nil, &corev1.ConfigMap{})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	resp, err := client.Get(ctx, key(""), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	leases := map[int64]int{}
	for _, kv := range resp.Kvs {
		leases[kv.Lease]++
	}
	if len(leases) != 1 || leases[int64(lease)] != n+2 {
		t.Fatalf("%d objects on leases %v, want all on %x", len(resp.Kvs), leases, lease)
	}
	list, err := client.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Leases) != 1 {
		t.Fatalf("etcd holds %d leases, want 1", len(list.Leases))
	}
}

// TestTTLExpiry shows an object written with a short TTL deleted by etcd,
// which watches see as a DELETED event.
func TestTTLExpiry(t *testing.T) {
	plain, _ := storagetest.NewStore(t)
	s := plain.WithTTL(2 * time.Second)
	ctx := context.Background()
	created := &corev1.ConfigMap{}
	start := time.Now()
	if err := s.Create(ctx, key("brief"), cm("brief", "1"), nil, created); err != nil {
		t.Fatal(err)
	}
	if err := plain.Create(ctx, key("kept"), cm("kept", "1"), nil, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, key(""), storage.WatchOptions{ResourceVersion: created.ResourceVersion, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Deleted {
				continue
			}
			if name := ev.Object.(*corev1.ConfigMap).Name; name != "brief" {
				t.Fatalf("%s deleted, want brief", name)
			}
			if age := time.Since(start); age < 2*time.Second {
				t.Fatalf("deleted after %v, before its TTL of 2s", age)
			}
			if ok, err := s.KeyExists(ctx, key("brief")); err != nil || ok {
				t.Fatalf("expired key still exists: %v %v", ok, err)
			}
			if ok, err := s.KeyExists(ctx, key("kept")); err != nil || !ok {
				t.Fatalf("object without a TTL gone: %v %v", ok, err)
			}
			return
		case <-timeout:
			t.Fatal("object with a 2s TTL not deleted within 15s")
		}
	}
}
