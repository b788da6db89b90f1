package endpointslice

import (
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/clock"
)

// writeTimeout is how long a write the cache does not show is waited for
// before syncs go on without it (upstream expectations' 5 minutes). Only
// a slice created and deleted while the watch was down is never shown.
const writeTimeout = 5 * time.Minute

// tracker remembers, per Service, the slices this controller wrote or
// deleted that its cache may not show yet (upstream's
// EndpointSliceTracker): a sync on such a cache would create slices twice
// or work from outdated ones.
type tracker struct {
	clock clock.PassiveClock

	mu sync.Mutex
	// writes maps a Service key to its slices' pending writes by name.
	writes map[string]map[string]write
}

type write struct {
	// generation is the slice's generation after the write; deleted says
	// the write was a deletion.
	generation int64
	deleted    bool
	at         time.Time
}

func newTracker(clk clock.PassiveClock) *tracker {
	return &tracker{clock: clk, writes: map[string]map[string]write{}}
}

// wrote records a created or updated slice as the server returned it.
func (t *tracker) wrote(svcKey string, s *discoveryv1.EndpointSlice) {
	t.record(svcKey, s.Name, write{generation: s.Generation, at: t.clock.Now()})
}

// deleted records a deleted slice.
func (t *tracker) deleted(svcKey, name string) {
	t.record(svcKey, name, write{deleted: true, at: t.clock.Now()})
}

func (t *tracker) record(svcKey, name string, w write) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.writes[svcKey]
	if m == nil {
		m = map[string]write{}
		t.writes[svcKey] = m
	}
	m[name] = w
}

// expectsDeletion reports whether the slice's deletion was issued.
func (t *tracker) expectsDeletion(svcKey, name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes[svcKey][name].deleted
}

// observedDeletion forgets a slice the cache saw go.
func (t *tracker) observedDeletion(svcKey, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.writes[svcKey], name)
}

// forget drops what is remembered for a Service.
func (t *tracker) forget(svcKey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.writes, svcKey)
}

// stale reports whether the cached slices of a Service (cached) are
// behind a write of this controller; writes the cache shows are
// forgotten.
func (t *tracker) stale(svcKey string, cached []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.writes[svcKey]
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
		case now.Sub(w.at) > writeTimeout:
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
		case w.deleted || now.Sub(w.at) > writeTimeout:
			delete(m, name) // gone, as it should be, or given up on
		default:
			behind = true // created, not shown yet
		}
	}
	if len(m) == 0 {
		delete(t.writes, svcKey)
	}
	return behind
}
