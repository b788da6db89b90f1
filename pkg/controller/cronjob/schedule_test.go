package cronjob

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func mustParse(t *testing.T, schedule string, loc *time.Location) cron.Schedule {
	t.Helper()
	s, err := parseSchedule(schedule, loc)
	if err != nil {
		t.Fatalf("parse %q: %v", schedule, err)
	}
	return s
}

func TestParseSchedule(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		schedule string
		loc      *time.Location
		next     time.Time // zero: the schedule must be refused
	}{
		{"*/5 * * * *", time.UTC, time.Date(2026, 3, 2, 10, 5, 0, 0, time.UTC)},
		{"@hourly", time.UTC, time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)},
		{"@daily", time.UTC, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
		{"@every 90m", time.UTC, from.Add(90 * time.Minute)},
		{"0 9 * * *", tokyo, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
		{"@daily", tokyo, time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)},
		// A zone in the schedule wins over the one given.
		{"TZ=Asia/Tokyo 0 9 * * *", time.UTC, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Asia/Tokyo 0 9 * * *", time.UTC, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
		{"", time.UTC, time.Time{}},
		{"not a schedule", time.UTC, time.Time{}},
		{"* * * *", time.UTC, time.Time{}},
		{"0 0 * * * *", time.UTC, time.Time{}}, // seconds are not standard
		{"61 * * * *", time.UTC, time.Time{}},
		{"*/0 * * * *", time.UTC, time.Time{}},
		{"TZ=UTC", time.UTC, time.Time{}}, // panics inside robfig/cron unless refused
		{"CRON_TZ=Asia/Tokyo", time.UTC, time.Time{}},
		{"TZ=Nowhere/Nothing * * * * *", time.UTC, time.Time{}},
		{"TZ=UTC ", time.UTC, time.Time{}},
	} {
		s, err := parseSchedule(tc.schedule, tc.loc)
		if tc.next.IsZero() {
			if err == nil {
				t.Errorf("%q: parsed, want an error", tc.schedule)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.schedule, err)
			continue
		}
		if got := s.Next(from); !got.Equal(tc.next) {
			t.Errorf("%q in %v: next after %v is %v, want %v", tc.schedule, tc.loc, from, got.UTC(), tc.next)
		}
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "@every 1h", "TZ=UTC", "TZ=UTC 0 * * * *", "CRON_TZ=", "0 0 30 2 *", "@", "1-5/2 1,2 * JAN-MAR MON"} {
		f.Add(s)
	}
	from := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)
	f.Fuzz(func(t *testing.T, schedule string) {
		s, err := parseSchedule(schedule, time.UTC)
		if err == nil {
			s.Next(from)
		}
	})
}

func TestMostRecent(t *testing.T) {
	at := func(month time.Month, day, hour, min int) time.Time {
		return time.Date(2026, month, day, hour, min, 0, 0, time.UTC)
	}
	created := at(3, 2, 10, 0).Add(30 * time.Second) // Monday
	for _, tc := range []struct {
		name          string
		schedule      string
		earliest, now time.Time
		want          time.Time // zero: none
		wantErr       bool
	}{
		{name: "not yet", schedule: "0 * * * *", earliest: created, now: at(3, 2, 10, 30)},
		{name: "exactly on time", schedule: "0 * * * *", earliest: created, now: at(3, 2, 11, 0), want: at(3, 2, 11, 0)},
		{name: "already ran", schedule: "0 * * * *", earliest: at(3, 2, 11, 0), now: at(3, 2, 11, 30)},
		{name: "several missed", schedule: "0 * * * *", earliest: created, now: at(3, 2, 13, 20), want: at(3, 2, 13, 0)},
		{name: "descriptor", schedule: "@hourly", earliest: created, now: at(3, 2, 13, 20), want: at(3, 2, 13, 0)},
		{name: "every", schedule: "@every 90m", earliest: created, now: at(3, 2, 14, 0), want: created.Add(3 * time.Hour)},
		{name: "a year of minutes", schedule: "*/1 * * * *", earliest: at(3, 2, 10, 0).AddDate(-1, 0, 0), now: at(3, 2, 10, 0).Add(59 * time.Second), want: at(3, 2, 10, 0)},
		// Mon 09:00, Tue 09:00, ... : a spacing-based estimate jumps past
		// Friday when looking back from the next Monday morning.
		{name: "irregular", schedule: "0 9 * * 1-5", earliest: at(3, 2, 9, 0), now: at(3, 9, 8, 0), want: at(3, 6, 9, 0)},
		{name: "leap day", schedule: "0 0 29 2 *", earliest: created, now: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), want: time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{name: "created in the future", schedule: "*/1 * * * *", earliest: at(3, 2, 12, 0), now: at(3, 2, 11, 0)},
		{name: "never", schedule: "0 0 30 2 *", earliest: created, now: at(3, 2, 11, 0), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mostRecent(mustParse(t, tc.schedule, time.UTC), tc.earliest, tc.now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			switch {
			case tc.want.IsZero() && got != nil:
				t.Errorf("got %v, want none", *got)
			case !tc.want.IsZero() && (got == nil || !got.Equal(tc.want)):
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMissedCount(t *testing.T) {
	created := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)
	s := mustParse(t, "*/1 * * * *", time.UTC)
	for _, tc := range []struct {
		now  time.Time
		want int64
	}{
		{created.Add(20 * time.Second), 0},
		{created.Add(40 * time.Second), 1},
		{created.Add(100*time.Minute + 10*time.Second), 100},
		{created.Add(3 * time.Hour), 180},
	} {
		if got := missedCount(s, created, tc.now); got != tc.want {
			t.Errorf("missed by %v = %d, want %d", tc.now, got, tc.want)
		}
	}
}

func TestUntilNext(t *testing.T) {
	created := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)
	s := mustParse(t, "0 * * * *", time.UTC)
	for _, tc := range []struct {
		earliest, now time.Time
		want          time.Duration
	}{
		{created, created, 59*time.Minute + 30*time.Second + nextScheduleDelta},
		{created, created.Add(3*time.Hour + 30*time.Minute), 29*time.Minute + 30*time.Second + nextScheduleDelta},
		// Just after the time: the next one, not this one again.
		{created, time.Date(2026, 3, 2, 11, 0, 0, int(nextScheduleDelta), time.UTC), time.Hour},
		// A creation time ahead of the clock counts from the creation time.
		{created.Add(2 * time.Hour), created, 2*time.Hour + 59*time.Minute + 30*time.Second + nextScheduleDelta},
	} {
		if got, ok := untilNext(s, tc.earliest, tc.now); !ok || got != tc.want {
			t.Errorf("untilNext(%v, %v) = %v, %v; want %v", tc.earliest, tc.now, got, ok, tc.want)
		}
	}
	if _, ok := untilNext(mustParse(t, "0 0 30 2 *", time.UTC), created, created); ok {
		t.Error("a schedule that never fires has a next time")
	}
}
