package controllermanager

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff/skiff/pkg/controller/nodelifecycle"
	"github.com/skiff/skiff/pkg/controller/podgc"
)

// Options are the controller settings users tune with k3s's
// `--kube-controller-manager-arg name=value`, named as upstream
// kube-controller-manager's flags.
type Options struct {
	NodeLifecycle nodelifecycle.Config
	PodGC         podgc.Config
}

// DefaultOptions are upstream kube-controller-manager's defaults.
func DefaultOptions() Options {
	return Options{NodeLifecycle: nodelifecycle.DefaultConfig(), PodGC: podgc.DefaultConfig()}
}

// ArgHelp documents --kube-controller-manager-arg.
const ArgHelp = "Customized flag for the controller manager (name=value): node-monitor-grace-period, node-monitor-period, node-startup-grace-period, node-eviction-rate, secondary-node-eviction-rate, large-cluster-size-threshold, unhealthy-zone-threshold, terminated-pod-gc-threshold"

// ParseArgs reads `--kube-controller-manager-arg` values ("name=value",
// with or without leading dashes) over the defaults. Flags skiff does not
// support are an error, not silently ignored.
func ParseArgs(args []string) (Options, error) {
	o := DefaultOptions()
	nl := &o.NodeLifecycle
	fs := pflag.NewFlagSet("kube-controller-manager-arg", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.DurationVar(&nl.GracePeriod, "node-monitor-grace-period", nl.GracePeriod, "")
	fs.DurationVar(&nl.MonitorPeriod, "node-monitor-period", nl.MonitorPeriod, "")
	fs.DurationVar(&nl.StartupGracePeriod, "node-startup-grace-period", nl.StartupGracePeriod, "")
	fs.Float32Var(&nl.EvictionRate, "node-eviction-rate", nl.EvictionRate, "")
	fs.Float32Var(&nl.SecondaryEvictionRate, "secondary-node-eviction-rate", nl.SecondaryEvictionRate, "")
	fs.IntVar(&nl.LargeClusterSizeThreshold, "large-cluster-size-threshold", nl.LargeClusterSizeThreshold, "")
	fs.Float32Var(&nl.UnhealthyZoneThreshold, "unhealthy-zone-threshold", nl.UnhealthyZoneThreshold, "")
	fs.IntVar(&o.PodGC.TerminatedThreshold, "terminated-pod-gc-threshold", o.PodGC.TerminatedThreshold, "")
	flags := make([]string, len(args))
	for i, a := range args {
		flags[i] = "--" + strings.TrimLeft(a, "-")
	}
	if err := fs.Parse(flags); err != nil {
		var names []string
		fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		slices.Sort(names)
		return o, fmt.Errorf("--kube-controller-manager-arg: %w (supported: %s)", err, strings.Join(names, ", "))
	}
	if err := nl.Validate(); err != nil {
		return o, fmt.Errorf("--kube-controller-manager-arg: %w", err)
	}
	return o, nil
}

// LeaseRenewInterval is how often kubelets should renew their node Lease
// for the controller to see them alive: upstream's 10 s, or a fifth of a
// grace period shorter than 50 s (so a node misses four renewals before
// it is Unknown), never under a second.
func (o Options) LeaseRenewInterval() time.Duration {
	d := min(o.NodeLifecycle.GracePeriod/5, 10*time.Second)
	return max(d, time.Second)
}
