// Package slicewriter makes the EndpointSlice writes of the controllers
// that keep slices (endpointslice, endpointslicemirroring) and remembers
// those their informer cache may not show yet, so that a sync on a stale
// cache neither creates slices twice nor works from outdated ones
// (upstream's EndpointSliceTracker). Keys are the controller's own (a
// Service or an Endpoints key).
package slicewriter

import (
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/clock"
)

// WriteTimeout is how long a write the cache does not show is waited for
// before syncs go on without it (upstream expectations' 5 minutes). Only
// a slice created and deleted while the watch was down is never shown.
const WriteTimeout = 5 * time.Minute

// Tracker remembers, per key, the slices a controller wrote or deleted
// that its cache may not show yet. It is safe for concurrent use.
type Tracker struct {
	clock clock.PassiveClock

	mu sync.Mutex
	// writes maps a key to its slices' pending writes by name.
	writes map[string]map[string]write
}

type write struct {
	// generation is the slice's generation after the write; deleted says
	// the write was a deletion.
	generation int64
	deleted    bool
	at         time.Time
}

// NewTracker returns an empty Tracker on clk.
func NewTracker(clk clock.PassiveClock) *Tracker {
	return &Tracker{clock: clk, writes: map[string]map[string]write{}}
}

// Wrote records a created or updated slice as the server returned it.
func (t *Tracker) Wrote(key string, s *discoveryv1.EndpointSlice) {
	t.record(key, s.Name, write{generation: s.Generation, at: t.clock.Now()})
}

// Deleted records a deleted slice.
func (t *Tracker) Deleted(key, name string) {
	t.record(key, name, write{deleted: true, at: t.clock.Now()})
}

func (t *Tracker) record(key, name string, w write) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.writes[key]
	if m == nil {
		m = map[string]write{}
		t.writes[key] = m
	}
	m[name] = w
}

// ExpectsDeletion reports whether the slice's deletion was issued.
func (t *Tracker) ExpectsDeletion(key, name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes[key][name].deleted
}

// ObservedDeletion forgets a slice the cache saw go.
func (t *Tracker) ObservedDeletion(key, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.writes[key], name)
}

// Forget drops what is remembered for a key.
func (t *Tracker) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.writes, key)
}

// Stale reports whether the cached slices of a key (cached) are
// behind a write of the controller; writes the cache shows are
// forgotten.
func (t *Tracker) Stale(key string, cached []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.writes[key]
	if len(m) == 0 {
		return false
	}
	now := t.clock.Now()
	seen := make(map[string]bool, len(cached))
	behind := false
	for _, s := range cached {
		seen[s.Name] = true
		w, ok := m[s.Name]
		switch {
		case !ok:
		case now.Sub(w.at) > WriteTimeout:
			delete(m, s.Name)
		case w.deleted || s.Generation < w.generation:
			behind = true
		default:
			delete(m, s.Name) // shown
		}
	}
	for name, w := range m {
		switch {
		case seen[name]:
		case w.deleted || now.Sub(w.at) > WriteTimeout:
			delete(m, name) // gone, as it should be, or given up on
		default:
			behind = true // created, not shown yet
		}
	}
	if len(m) == 0 {
		delete(t.writes, key)
	}
	return behind
}
