package agent

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff/skiff/pkg/kubelet/imagegc"
	"github.com/skiff/skiff/pkg/kubelet/logrotate"
)

// KubeletOptions are the node settings users tune with k3s's
// `--kubelet-arg key=value`, named as the upstream kubelet's flags.
type KubeletOptions struct {
	ImageGC imagegc.Policy
	Logs    logrotate.Policy
	// LogMonitorInterval is how often log sizes are checked (upstream's
	// container-log-monitor-interval, default 10s, at least 3s).
	LogMonitorInterval time.Duration
}

// DefaultKubeletOptions are the upstream kubelet's defaults.
func DefaultKubeletOptions() KubeletOptions {
	return KubeletOptions{ImageGC: imagegc.DefaultPolicy, Logs: logrotate.DefaultPolicy, LogMonitorInterval: 10 * time.Second}
}

// ParseKubeletArgs reads `--kubelet-arg` values ("name=value", with or
// without leading dashes) over the defaults. Flags skiff does not support
// are an error, not silently ignored.
func ParseKubeletArgs(args []string) (KubeletOptions, error) {
	o := DefaultKubeletOptions()
	fs := pflag.NewFlagSet("kubelet-arg", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	high := fs.Int32("image-gc-high-threshold", int32(o.ImageGC.HighThresholdPercent), "")
	low := fs.Int32("image-gc-low-threshold", int32(o.ImageGC.LowThresholdPercent), "")
	ttl := fs.Duration("minimum-image-ttl-duration", o.ImageGC.MinAge, "")
	logSize := fs.String("container-log-max-size", "10Mi", "")
	logFiles := fs.Int32("container-log-max-files", int32(o.Logs.MaxFiles), "")
	logInterval := fs.Duration("container-log-monitor-interval", o.LogMonitorInterval, "")
	flags := make([]string, len(args))
	for i, a := range args {
		flags[i] = "--" + strings.TrimLeft(a, "-")
	}
	if err := fs.Parse(flags); err != nil {
		var names []string
		fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		slices.Sort(names)
		return o, fmt.Errorf("--kubelet-arg: %w (supported: %s)", err, strings.Join(names, ", "))
	}
	q, err := resource.ParseQuantity(*logSize)
	if err != nil {
		return o, fmt.Errorf("--kubelet-arg container-log-max-size=%s: %w", *logSize, err)
	}
	o.ImageGC = imagegc.Policy{HighThresholdPercent: int(*high), LowThresholdPercent: int(*low), MinAge: *ttl}
	o.Logs = logrotate.Policy{MaxSize: q.Value(), MaxFiles: int(*logFiles)}
	o.LogMonitorInterval = *logInterval
	if o.LogMonitorInterval < 3*time.Second {
		return o, fmt.Errorf("--kubelet-arg container-log-monitor-interval=%v: must be at least 3s", o.LogMonitorInterval)
	}
	if err := o.ImageGC.Validate(); err != nil {
		return o, fmt.Errorf("--kubelet-arg: image GC: %w", err)
	}
	if err := o.Logs.Validate(); err != nil {
		return o, fmt.Errorf("--kubelet-arg: container logs: %w", err)
	}
	return o, nil
}

// gcPeriod is how often image use is recorded and disk usage checked
// (upstream checks every 5 minutes; a statfs and two local calls are cheap
// enough to notice a filling disk sooner).
const gcPeriod = 10 * time.Second
