// Package imagegc frees disk by removing unused images when the image
// filesystem fills up, the way the upstream kubelet's image garbage
// collector does: above the high threshold it deletes images no container
// uses, least recently used first, until usage falls to the low threshold.
package imagegc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Policy says when to collect; the defaults are upstream's.
type Policy struct {
	// HighThresholdPercent of disk usage triggers collection (default 85;
	// 100 disables it).
	HighThresholdPercent int
	// LowThresholdPercent is what collection frees down to (default 80).
	LowThresholdPercent int
	// MinAge is how long an image must have been unused (or, if never
	// used, known) before it may be deleted (default 2m).
	MinAge time.Duration
}

// DefaultPolicy is the upstream kubelet's default.
var DefaultPolicy = Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute}

// Validate checks the thresholds as upstream does.
func (p Policy) Validate() error {
	switch {
	case p.HighThresholdPercent < 0 || p.HighThresholdPercent > 100:
		return fmt.Errorf("invalid HighThresholdPercent %d, must be in range [0-100]", p.HighThresholdPercent)
	case p.LowThresholdPercent < 0 || p.LowThresholdPercent > 100:
		return fmt.Errorf("invalid LowThresholdPercent %d, must be in range [0-100]", p.LowThresholdPercent)
	case p.LowThresholdPercent > p.HighThresholdPercent:
		return fmt.Errorf("LowThresholdPercent %d can not be higher than HighThresholdPercent %d", p.LowThresholdPercent, p.HighThresholdPercent)
	case p.MinAge < 0:
		return fmt.Errorf("minimum image age %v is negative", p.MinAge)
	}
	return nil
}

// FsStats reports the image filesystem's capacity and available bytes.
type FsStats func() (capacity, available uint64, err error)

// Result is what one collection did.
type Result struct {
	// Freed is the bytes of the images deleted.
	Freed uint64
	// Deleted are the ids of the images deleted.
	Deleted []string
}

// ErrNotEnough is returned (wrapped) when collection could not free as much
// as the thresholds ask for.
var ErrNotEnough = errors.New("failed to garbage collect required amount of images")

// Collector tracks when each image was last used and deletes unused ones
// when the disk is fuller than the policy allows.
type Collector struct {
	policy  Policy
	runtime internalapi.RuntimeService
	images  internalapi.ImageManagerService
	fs      FsStats
	clock   clock.Clock
	log     *slog.Logger

	mu sync.Mutex
	// records holds, per image id, when it was first seen and last used.
	records map[string]*record
}

type record struct {
	firstDetected time.Time
	lastUsed      time.Time
	size          uint64
	pinned        bool
}

// New returns a Collector.
func New(p Policy, rt internalapi.RuntimeService, img internalapi.ImageManagerService, fs FsStats, clk clock.Clock, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{policy: p, runtime: rt, images: img, fs: fs, clock: clk, log: log, records: map[string]*record{}}
}

// Detect refreshes the records: new images, images in use by any
// container (running or not) now, images gone. It returns the ids in use.
func (c *Collector) Detect(ctx context.Context) (map[string]bool, error) {
	imgs, err := c.images.ListImages(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	ctrs, err := c.runtime.ListContainers(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	inUse := map[string]bool{}
	for _, ct := range ctrs {
		for _, ref := range []string{ct.GetImageId(), ct.GetImageRef(), ct.GetImage().GetImage()} {
			if ref != "" {
				inUse[ref] = true
			}
		}
	}
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, img := range imgs {
		id := img.GetId()
		seen[id] = true
		r := c.records[id]
		if r == nil {
			r = &record{firstDetected: now}
			c.records[id] = r
		}
		r.size, r.pinned = img.GetSize(), img.GetPinned()
		if used(img, inUse) {
			r.lastUsed = now
		}
	}
	for id := range c.records {
		if !seen[id] {
			delete(c.records, id)
		}
	}
	return inUse, nil
}

func used(img *runtimeapi.Image, inUse map[string]bool) bool {
	if inUse[img.GetId()] {
		return true
	}
	for _, names := range [][]string{img.GetRepoTags(), img.GetRepoDigests()} {
		for _, n := range names {
			if inUse[n] {
				return true
			}
		}
	}
	return false
}

// Collect deletes unused images if the disk is above the high threshold.
func (c *Collector) Collect(ctx context.Context) (Result, error) {
	capacity, available, err := c.fs()
	if err != nil {
		return Result{}, fmt.Errorf("image filesystem stats: %w", err)
	}
	if capacity == 0 || c.policy.HighThresholdPercent >= 100 {
		return Result{}, nil
	}
	if available > capacity {
		available = capacity
	}
	usage := 100 * (capacity - available) / capacity
	if usage < uint64(c.policy.HighThresholdPercent) {
		return Result{}, nil
	}
	toFree := (capacity - available) - capacity*uint64(c.policy.LowThresholdPercent)/100
	c.log.Info("disk usage above the image GC threshold", "usage", usage, "highThreshold", c.policy.HighThresholdPercent, "bytesToFree", toFree)
	return c.free(ctx, toFree)
}

// free deletes unused images, least recently used first, until want bytes
// are freed.
func (c *Collector) free(ctx context.Context, want uint64) (Result, error) {
	inUse, err := c.Detect(ctx)
	if err != nil {
		return Result{}, err
	}
	now := c.clock.Now()
	type candidate struct {
		id string
		r  record
	}
	var cands []candidate
	c.mu.Lock()
	for id, r := range c.records {
		if inUse[id] || r.pinned {
			continue
		}
		// lastUsed is zero for never-used images: they go first.
		since := r.lastUsed
		if since.IsZero() {
			since = r.firstDetected
		}
		if now.Sub(since) < c.policy.MinAge {
			continue
		}
		cands = append(cands, candidate{id, *r})
	}
	c.mu.Unlock()
	sort.Slice(cands, func(i, j int) bool {
		if !cands[i].r.lastUsed.Equal(cands[j].r.lastUsed) {
			return cands[i].r.lastUsed.Before(cands[j].r.lastUsed)
		}
		return cands[i].r.firstDetected.Before(cands[j].r.firstDetected)
	})
	var res Result
	var errs []error
	for _, cand := range cands {
		if res.Freed >= want {
			break
		}
		if err := c.images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: cand.id}); err != nil {
			errs = append(errs, fmt.Errorf("remove image %s: %w", cand.id, err))
			continue
		}
		c.log.Info("removed unused image", "image", cand.id, "size", cand.r.size)
		c.mu.Lock()
		delete(c.records, cand.id)
		c.mu.Unlock()
		res.Freed += cand.r.size
		res.Deleted = append(res.Deleted, cand.id)
	}
	if res.Freed < want {
		errs = append(errs, fmt.Errorf("%w. Attempted to free %d bytes, but only found %d bytes eligible to free", ErrNotEnough, want, res.Freed))
	}
	return res, errors.Join(errs...)
}

// Run detects image use and collects every period until ctx ends; each
// failure to free enough is passed to onFailure (for an event).
func (c *Collector) Run(ctx context.Context, period time.Duration, onFailure func(error)) {
	t := c.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if _, err := c.Detect(ctx); err != nil {
			c.log.Warn("image GC: detect images", "err", err)
		} else if _, err := c.Collect(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("image GC", "err", err)
			if onFailure != nil {
				onFailure(err)
			}
		}
		t.Reset(period)
	}
}
