// Package expectations remembers, per controller object, the pod creations
// and deletions a controller issued that its informer has not shown yet,
// so that a burst of watch events never makes it create or delete twice
// (upstream's ControllerExpectations, with deletions tracked by pod UID as
// upstream's UIDTrackingControllerExpectations).
package expectations

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// expectationsTimeout is how long unobserved creations or deletions are
// waited for before a sync acts again anyway (upstream's 5 minutes).
const expectationsTimeout = 5 * time.Minute

// Expectations remember, per controller, how many pod creations it issued
// and which pods it deleted that the informer has not shown yet.
type Expectations struct {
	clock clock.PassiveClock
	mu    sync.Mutex
	m     map[string]*expectation
}

type expectation struct {
	add  int64
	dels map[types.UID]bool
	at   time.Time
}

// New returns empty Expectations.
func New(clk clock.PassiveClock) *Expectations {
	return &Expectations{clock: clk, m: map[string]*expectation{}}
}

// Satisfied reports whether everything expected for key was observed (or
// waited for too long).
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return x.add <= 0 && len(x.dels) == 0 || e.clock.Since(x.at) > expectationsTimeout
}

// Expect sets what key's next sync must observe: add creations and the
// deletion of the pods dels.
func (e *Expectations) Expect(key string, add int64, dels []types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expectation{add: add, dels: make(map[types.UID]bool, len(dels)), at: e.clock.Now()}
	for _, uid := range dels {
		x.dels[uid] = true
	}
	e.m[key] = x
}

// ObservedCreate lowers the creations expected for key by one.
func (e *Expectations) ObservedCreate(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.add--
	}
}

// ObservedDelete marks pod uid's deletion as seen: its deletionTimestamp
// was set or it is gone (either may be seen first, or both).
func (e *Expectations) ObservedDelete(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		delete(x.dels, uid)
	}
}

// Forget drops key's expectations.
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
