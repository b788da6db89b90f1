// Package expectations remembers, per controller object, the pod creations
// and deletions a controller issued that its informer has not shown yet,
// so that a burst of watch events never makes it create or delete twice
// (upstream's ControllerExpectations).
package expectations

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// expectationsTimeout is how long unobserved creations or deletions are
// waited for before a sync acts again anyway (upstream's 5 minutes).
const expectationsTimeout = 5 * time.Minute

// Expectations remember, per controller, how many pod creations and
// deletions it issued that the informer has not shown yet, so a burst of
// watch events never makes it create or delete twice.
type Expectations struct {
	clock clock.PassiveClock
	mu    sync.Mutex
	m     map[string]*expectation
}

type expectation struct {
	add, del int64
	at       time.Time
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
	return x.add <= 0 && x.del <= 0 || e.clock.Since(x.at) > expectationsTimeout
}

// Expect sets what key's next sync must observe.
func (e *Expectations) Expect(key string, add, del int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{add: add, del: del, at: e.clock.Now()}
}

// Observed lowers the expectation (add or delete) by one.
func (e *Expectations) Observed(key string, add bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		if add {
			x.add--
		} else {
			x.del--
		}
	}
}

// Forget drops key's expectations.
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
