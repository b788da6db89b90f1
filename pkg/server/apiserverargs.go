package server

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff/skiff/pkg/admission"
)

// DefaultEventTTL is how long Events live by default, as upstream's
// kube-apiserver --event-ttl.
const DefaultEventTTL = time.Hour

// KubeAPIServerArgHelp documents --kube-apiserver-arg.
const KubeAPIServerArgHelp = "Customized flag for the API server (name=value): event-ttl, default-not-ready-toleration-seconds, default-unreachable-toleration-seconds"

// ApplyKubeAPIServerArgs sets the fields of c that k3s's
// `--kube-apiserver-arg` values ("name=value", with or without leading
// dashes) name, after upstream kube-apiserver's flags. Flags skiff does not
// support are an error, not silently ignored.
func (c *Config) ApplyKubeAPIServerArgs(args []string) error {
	if len(args) == 0 {
		return nil
	}
	fs := pflag.NewFlagSet("kube-apiserver-arg", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ttl := c.EventTTL
	if ttl == 0 {
		ttl = DefaultEventTTL
	}
	fs.DurationVar(&c.EventTTL, "event-ttl", ttl, "")
	notReady, unreachable := c.DefaultNotReadyTolerationSeconds, c.DefaultUnreachableTolerationSeconds
	if notReady == 0 {
		notReady = admission.DefaultNodeTolerationSeconds
	}
	if unreachable == 0 {
		unreachable = admission.DefaultNodeTolerationSeconds
	}
	fs.Int64Var(&c.DefaultNotReadyTolerationSeconds, "default-not-ready-toleration-seconds", notReady, "")
	fs.Int64Var(&c.DefaultUnreachableTolerationSeconds, "default-unreachable-toleration-seconds", unreachable, "")
	flags := make([]string, len(args))
	for i, a := range args {
		flags[i] = "--" + strings.TrimLeft(a, "-")
	}
	if err := fs.Parse(flags); err != nil {
		var names []string
		fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		slices.Sort(names)
		return fmt.Errorf("--kube-apiserver-arg: %w (supported: %s)", err, strings.Join(names, ", "))
	}
	// Checked here too: setDefaults would take a zero for "unset".
	if c.DefaultNotReadyTolerationSeconds <= 0 || c.DefaultUnreachableTolerationSeconds <= 0 {
		return fmt.Errorf("--kube-apiserver-arg default-not-ready-toleration-seconds=%d, default-unreachable-toleration-seconds=%d: must be positive",
			c.DefaultNotReadyTolerationSeconds, c.DefaultUnreachableTolerationSeconds)
	}
	return checkEventTTL(c.EventTTL)
}

// checkEventTTL rejects TTLs below etcd's granularity of a second.
func checkEventTTL(ttl time.Duration) error {
	if ttl < time.Second {
		return fmt.Errorf("--kube-apiserver-arg event-ttl=%v: must be at least 1s", ttl)
	}
	return nil
}
