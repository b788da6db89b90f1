package cronjob

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// nextScheduleDelta pads every timed requeue so the sync lands just after
// a schedule time rather than just before it (upstream's 100ms).
const nextScheduleDelta = 100 * time.Millisecond

// tooManyMissed is how many missed schedule times upstream tolerates
// before it warns with TooManyMissedTimes.
const tooManyMissed = 100

// errNeverFires reports a schedule that parses but names no real time,
// such as "0 0 30 2 *".
var errNeverFires = errors.New("the schedule has no time within the next five years")

// parseSchedule parses spec.schedule: five fields or a descriptor
// (@hourly, @every 90m, ...), optionally behind a TZ= or CRON_TZ= prefix.
// A schedule that names no zone of its own runs in loc.
func parseSchedule(schedule string, loc *time.Location) (cron.Schedule, error) {
	// robfig/cron v3.0.1 slices out of range on a zone prefix that is not
	// followed by a space, so that case is refused here.
	if (strings.HasPrefix(schedule, "TZ=") || strings.HasPrefix(schedule, "CRON_TZ=")) && !strings.Contains(schedule, " ") {
		return nil, fmt.Errorf("time zone prefix without a schedule")
	}
	s, err := cron.ParseStandard(schedule)
	if err != nil {
		return nil, err
	}
	if spec, ok := s.(*cron.SpecSchedule); ok && spec.Location == time.Local {
		spec.Location = loc
	}
	return s, nil
}

// mostRecent returns the latest schedule time in (earliest, now], or nil
// if there is none. It searches backwards from now, doubling the window,
// so that a CronJob that missed years of schedule times costs a few steps
// rather than one per missed time; unlike upstream's estimate, it is exact
// for irregular schedules such as "0 9 * * 1-5".
func mostRecent(s cron.Schedule, earliest, now time.Time) (*time.Time, error) {
	first := s.Next(earliest)
	if first.IsZero() {
		return nil, errNeverFires
	}
	if first.After(now) {
		return nil, nil
	}
	second := s.Next(first)
	if second.IsZero() || second.After(now) {
		return &first, nil
	}
	for back := 2 * second.Sub(first); ; back *= 2 {
		from := now.Add(-back)
		if from.Before(first) {
			// second is in (first, now], so this pass finds a time.
			from = first
		}
		var last time.Time
		for t := s.Next(from); !t.IsZero() && !t.After(now); t = s.Next(t) {
			last = t
		}
		if !last.IsZero() {
			return &last, nil
		}
	}
}

// missedCount estimates how many schedule times fall in (earliest, now]
// from the spacing of the first two, as upstream does; only whether it
// exceeds tooManyMissed matters.
func missedCount(s cron.Schedule, earliest, now time.Time) int64 {
	first := s.Next(earliest)
	if first.IsZero() || first.After(now) {
		return 0
	}
	second := s.Next(first)
	if second.IsZero() || second.After(now) {
		return 1
	}
	return int64(now.Sub(first)/second.Sub(first)) + 1
}

// untilNext is how long from now until the first schedule time after both
// now and earliest, padded by nextScheduleDelta; false if the schedule
// never fires again.
func untilNext(s cron.Schedule, earliest, now time.Time) (time.Duration, bool) {
	from := now
	if earliest.After(now) {
		from = earliest
	}
	next := s.Next(from)
	if next.IsZero() {
		return 0, false
	}
	return next.Sub(now) + nextScheduleDelta, true
}
