package imagegc

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

type fixture struct {
	rt    *critest.FakeRuntimeService
	img   *critest.FakeImageService
	clock *clocktesting.FakeClock
	used  uint64 // bytes used on a 1000-byte disk
	gc    *Collector
}

func newFixture(t *testing.T, p Policy, images ...string) *fixture {
	t.Helper()
	f := &fixture{rt: critest.NewFakeRuntimeService(), img: critest.NewFakeImageService(), clock: clocktesting.NewFakeClock(time.Unix(1000, 0))}
	f.img.SetFakeImageSize(100)
	f.img.SetFakeImages(images)
	f.gc = New(p, f.rt, f.img, func() (uint64, uint64, error) { return 1000, 1000 - f.used, nil }, f.clock, nil)
	return f
}

func (f *fixture) useImages(images ...string) {
	var cs []*critest.FakeContainer
	for i, img := range images {
		cs = append(cs, &critest.FakeContainer{ContainerStatus: runtimeapi.ContainerStatus{
			Id: string(rune('a' + i)), Image: &runtimeapi.ImageSpec{Image: img}, ImageRef: img,
			State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		}})
	}
	f.rt.SetFakeContainers(cs)
}

func (f *fixture) remaining(t *testing.T) []string {
	imgs, err := f.img.ListImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range imgs {
		ids = append(ids, i.Id)
	}
	slices.Sort(ids)
	return ids
}

func TestBelowHighThresholdNothingIsDeleted(t *testing.T) {
	f := newFixture(t, DefaultPolicy, "a", "b")
	f.used = 840
	f.clock.Step(time.Hour)
	res, err := f.gc.Collect(context.Background())
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("collect at 84%%: %+v %v", res, err)
	}
}

func TestDeletesLeastRecentlyUsedUnusedImagesDownToLowThreshold(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, DefaultPolicy, "old", "newer", "busy", "never")
	// "old" was used first, "newer" later, "busy" is in use now; "never"
	// was never used and goes first.
	f.useImages("old")
	f.gc.Detect(ctx)
	f.clock.Step(time.Minute)
	f.useImages("newer")
	f.gc.Detect(ctx)
	f.clock.Step(time.Minute)
	f.useImages("busy")
	f.gc.Detect(ctx)
	f.clock.Step(5 * time.Minute)

	f.used = 950 // 95%: free 150 bytes to reach 80%, i.e. two images
	res, err := f.gc.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Deleted, []string{"never", "old"}) || res.Freed != 200 {
		t.Fatalf("deleted %v (%d bytes), want never and old", res.Deleted, res.Freed)
	}
	if got := f.remaining(t); !slices.Equal(got, []string{"busy", "newer"}) {
		t.Fatalf("remaining %v", got)
	}
}

func TestImagesInUseYoungOrPinnedAreKept(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Policy{HighThresholdPercent: 50, LowThresholdPercent: 0, MinAge: time.Minute}, "busy", "young", "pinned", "gone")
	f.img.SetFakeImagePinned("pinned", true)
	f.useImages("busy")
	f.gc.Detect(ctx)
	f.clock.Step(2 * time.Minute)
	f.img.SetFakeImages([]string{"busy", "young", "pinned", "gone"})
	f.img.SetFakeImagePinned("pinned", true)
	f.gc.mu.Lock()
	f.gc.records["young"].firstDetected = f.clock.Now().Add(-30 * time.Second)
	f.gc.mu.Unlock()
	f.used = 900
	res, err := f.gc.Collect(ctx)
	if !errors.Is(err, ErrNotEnough) {
		t.Fatalf("want ErrNotEnough when only one image is eligible, got %v", err)
	}
	if !slices.Equal(res.Deleted, []string{"gone"}) {
		t.Fatalf("deleted %v, want only gone", res.Deleted)
	}
}

func TestDisabledAtHundredPercent(t *testing.T) {
	f := newFixture(t, Policy{HighThresholdPercent: 100, LowThresholdPercent: 80}, "a")
	f.used = 1000
	f.clock.Step(time.Hour)
	if res, err := f.gc.Collect(context.Background()); err != nil || len(res.Deleted) != 0 {
		t.Fatalf("collect with GC disabled: %+v %v", res, err)
	}
}

func TestPolicyValidation(t *testing.T) {
	for _, p := range []Policy{{HighThresholdPercent: 101}, {HighThresholdPercent: 50, LowThresholdPercent: 60}, {HighThresholdPercent: 80, LowThresholdPercent: -1}} {
		if p.Validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
	if err := DefaultPolicy.Validate(); err != nil {
		t.Fatal(err)
	}
}
