package controllermanager

import (
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	o, err := ParseArgs([]string{"node-monitor-grace-period=10s", "--node-monitor-period=1s", "terminated-pod-gc-threshold=5", "node-eviction-rate=0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if o.NodeLifecycle.GracePeriod != 10*time.Second || o.NodeLifecycle.MonitorPeriod != time.Second || o.PodGC.TerminatedThreshold != 5 || o.NodeLifecycle.EvictionRate != 0.5 {
		t.Fatalf("parsed %+v", o)
	}
	if got := o.LeaseRenewInterval(); got != 2*time.Second {
		t.Fatalf("lease renew interval under a 10s grace: %v, want 2s", got)
	}
	if got := DefaultOptions().LeaseRenewInterval(); got != 10*time.Second {
		t.Fatalf("lease renew interval by default: %v, want upstream's 10s", got)
	}
	for _, bad := range [][]string{{"pod-eviction-timeout=5m"}, {"node-monitor-grace-period=0s"}, {"unhealthy-zone-threshold=2"}, {"node-monitor-period=soon"}} {
		if _, err := ParseArgs(bad); err == nil || !strings.Contains(err.Error(), "--kube-controller-manager-arg") {
			t.Errorf("%v: got %v, want an error naming the flag", bad, err)
		}
	}
}
