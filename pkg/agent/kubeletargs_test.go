package agent

import (
	"strings"
	"testing"
	"time"
)

func TestParseKubeletArgs(t *testing.T) {
	o, err := ParseKubeletArgs([]string{"image-gc-high-threshold=90", "--image-gc-low-threshold=70", "minimum-image-ttl-duration=30s", "container-log-max-size=1Mi", "container-log-max-files=3"})
	if err != nil {
		t.Fatal(err)
	}
	if o.ImageGC.HighThresholdPercent != 90 || o.ImageGC.LowThresholdPercent != 70 || o.ImageGC.MinAge != 30*time.Second || o.Logs.MaxSize != 1<<20 || o.Logs.MaxFiles != 3 {
		t.Fatalf("parsed %+v", o)
	}
	if d, err := ParseKubeletArgs(nil); err != nil || d != DefaultKubeletOptions() {
		t.Fatalf("defaults: %+v %v", d, err)
	}
	for arg, want := range map[string]string{
		"max-pods=10":                 "unknown flag: --max-pods",
		"image-gc-low-threshold=95":   "can not be higher than",
		"container-log-max-size=lots": "container-log-max-size=lots",
		"container-log-max-files=1":   "must be > 1",
	} {
		if _, err := ParseKubeletArgs([]string{arg}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", arg, err, want)
		}
	}
}
