package hostgw

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// stateFile is the file under the state directory that lists what this
// owner installed.
const stateFile = "routes.json"

// Metrics of owners are drawn from [metricBase, metricBase+metricSpan):
// high enough to lose to any route an administrator adds for the same
// destination by hand (metric 0), spread wide enough that two owners on
// one machine rarely share one.
const (
	metricBase = 20000
	metricSpan = 10000
)

// state is what one owner installed, kept across restarts.
type state struct {
	// Metric is the priority of this owner's routes.
	Metric int `json:"metric"`
	// Destinations are the ranges this owner may have routes to: written
	// before a route is added, dropped after it is deleted.
	Destinations []netip.Prefix `json:"destinations"`
}

// metricFor derives an owner's metric from its state directory.
func metricFor(dir string) int {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(dir))
	return metricBase + int(h.Sum32()%metricSpan)
}

// loadState reads dir's state; ok is false when there is none.
func loadState(dir string) (st state, ok bool, err error) {
	p := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return state{}, false, nil
	}
	if err != nil {
		return state{}, false, fmt.Errorf("hostgw state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, false, fmt.Errorf("hostgw state %s: %w", p, err)
	}
	if st.Metric <= 0 {
		return state{}, false, fmt.Errorf("hostgw state %s: no metric", p)
	}
	return st, true, nil
}

// save writes st to dir atomically (a crash leaves the old or the new
// file, never half of one).
func (st state) save(dir string) error {
	slices.SortFunc(st.Destinations, comparePrefix)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("hostgw state dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, stateFile+".*")
	if err != nil {
		return fmt.Errorf("hostgw state: %w", err)
	}
	_, werr := tmp.Write(b)
	if serr := tmp.Sync(); werr == nil {
		werr = serr
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dir, stateFile))
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("hostgw state: %w", werr)
	}
	return nil
}

// comparePrefix orders prefixes by address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
