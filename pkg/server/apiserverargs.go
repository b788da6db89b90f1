package server

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// DefaultEventTTL is how long Events live by default, as upstream's
// kube-apiserver --event-ttl.
const DefaultEventTTL = time.Hour

// KubeAPIServerArgHelp documents --kube-apiserver-arg.
const KubeAPIServerArgHelp = "Customized flag for the API server (name=value): event-ttl"

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
	return checkEventTTL(c.EventTTL)
}

// checkEventTTL rejects TTLs below etcd's granularity of a second.
func checkEventTTL(ttl time.Duration) error {
	if ttl < time.Second {
		return fmt.Errorf("--kube-apiserver-arg event-ttl=%v: must be at least 1s", ttl)
	}
	return nil
}
