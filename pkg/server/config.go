// Package server assembles the control plane that `skiff server` runs: the
// datastore (embedded etcd or an external cluster), the cluster's
// certificates and admin kubeconfig, and the API server.
package server

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/skiff/skiff/pkg/admission"
	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/pkg/controllermanager"
)

// Config is the configuration of `skiff server`; flag names follow k3s.
type Config struct {
	// DataDir holds everything the server keeps: db/ (etcd), tls/, and the
	// admin kubeconfig. Default /var/lib/skiff.
	DataDir string
	// HTTPSPort is the API server's port (default 6443).
	HTTPSPort int
	// BindAddress is the address the API server listens on (default all).
	BindAddress string
	// WriteKubeconfig is where the admin kubeconfig is written
	// (default <DataDir>/admin.kubeconfig).
	WriteKubeconfig string
	// NodeName names this machine's node (default the hostname).
	NodeName string
	// NodeIP is the InternalIP of this machine's node (k3s's --node-ip):
	// the address other nodes route pod traffic to and agents may join
	// at, so it is also in the serving certificate and the "kubernetes"
	// Service's endpoint. Default the bind address when it names one,
	// else the address of the host's outward interface.
	NodeIP string
	// DisableAgent runs the control plane only.
	DisableAgent bool
	// DisableScheduler leaves pods unscheduled (for another scheduler).
	DisableScheduler bool
	// DisableControllerManager runs no controllers.
	DisableControllerManager bool
	// ClusterCIDR is the pod network (default 10.42.0.0/16).
	ClusterCIDR string
	// ServiceCIDR is the range ClusterIPs come from (default 10.43.0.0/16).
	ServiceCIDR string
	// ClusterDNS is the DNS service IP (default the 10th address of ServiceCIDR).
	ClusterDNS string
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string
	// Token is the shared secret agents join with; generated when empty.
	Token string
	// ClusterInit, Server and DatastoreEndpoint select the datastore: by
	// default an embedded single-member etcd; DatastoreEndpoint names an
	// external etcd (https://host:2379,...).
	ClusterInit       bool
	Server            string
	DatastoreEndpoint string
	// DatastoreCAFile, DatastoreCertFile and DatastoreKeyFile secure the
	// connection to an external etcd.
	DatastoreCAFile, DatastoreCertFile, DatastoreKeyFile string
	// CleanupOnExit removes everything the node made on SIGTERM.
	CleanupOnExit bool
	// KubeletArgs are k3s's --kubelet-arg values ("name=value") for the
	// server's own node.
	KubeletArgs []string
	// WatchBookmarkInterval is how often watches that allow bookmarks get
	// one (default 15s); tests shorten it.
	WatchBookmarkInterval time.Duration
	// EventTTL is how long an Event lives after its last write (upstream's
	// --event-ttl, set with --kube-apiserver-arg event-ttl=...; default
	// 1h, at least 1s; etcd rounds it up to whole seconds).
	EventTTL time.Duration
	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are how long pods tolerate a not-ready or unreachable node unless
	// they say otherwise (upstream's --default-not-ready-toleration-seconds
	// and --default-unreachable-toleration-seconds, set with
	// --kube-apiserver-arg; default 300).
	DefaultNotReadyTolerationSeconds, DefaultUnreachableTolerationSeconds int64
	// ControllerManager holds the --kube-controller-manager-arg settings;
	// nil means the defaults.
	ControllerManager *controllermanager.Options
}

// controllerOptions is c.ControllerManager or the defaults.
func (c *Config) controllerOptions() controllermanager.Options {
	if c.ControllerManager != nil {
		return *c.ControllerManager
	}
	return controllermanager.DefaultOptions()
}

// setDefaults fills unset fields.
func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "/var/lib/skiff"
	}
	if c.HTTPSPort == 0 {
		c.HTTPSPort = 6443
	}
	if c.BindAddress == "" {
		c.BindAddress = "0.0.0.0"
	}
	if c.WriteKubeconfig == "" {
		c.WriteKubeconfig = filepath.Join(c.DataDir, "admin.kubeconfig")
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.42.0.0/16"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.43.0.0/16"
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.EventTTL == 0 {
		c.EventTTL = DefaultEventTTL
	}
	if c.DefaultNotReadyTolerationSeconds == 0 {
		c.DefaultNotReadyTolerationSeconds = admission.DefaultNodeTolerationSeconds
	}
	if c.DefaultUnreachableTolerationSeconds == 0 {
		c.DefaultUnreachableTolerationSeconds = admission.DefaultNodeTolerationSeconds
	}
	if c.ClusterDNS == "" {
		// The 10th address of the service range, as k3s defaults it.
		if _, n, err := net.ParseCIDR(c.ServiceCIDR); err == nil {
			ip := n.IP.To4()
			if ip != nil {
				ip = append(net.IP{}, ip...)
				ip[3] += 10
				c.ClusterDNS = ip.String()
			}
		}
	}
}

// validate checks the configuration after defaults.
func (c *Config) validate() error {
	var errs []error
	if c.HTTPSPort <= 0 || c.HTTPSPort > 65535 {
		errs = append(errs, fmt.Errorf("--https-listen-port %d out of range", c.HTTPSPort))
	}
	if net.ParseIP(c.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("--bind-address %q is not an IP address", c.BindAddress))
	}
	if ip := net.ParseIP(c.NodeIP); c.NodeIP != "" && (ip == nil || ip.IsUnspecified()) {
		errs = append(errs, fmt.Errorf("--node-ip %q is not a node's IP address", c.NodeIP))
	}
	if _, _, err := net.ParseCIDR(c.ClusterCIDR); err != nil {
		errs = append(errs, fmt.Errorf("--cluster-cidr: %w", err))
	}
	if _, _, err := net.ParseCIDR(c.ServiceCIDR); err != nil {
		errs = append(errs, fmt.Errorf("--service-cidr: %w", err))
	}
	if c.ClusterDNS != "" && net.ParseIP(c.ClusterDNS) == nil {
		errs = append(errs, fmt.Errorf("--cluster-dns %q is not an IP address", c.ClusterDNS))
	}
	if _, err := agent.ParseKubeletArgs(c.KubeletArgs); err != nil {
		errs = append(errs, err)
	}
	if err := checkEventTTL(c.EventTTL); err != nil {
		errs = append(errs, err)
	}
	if c.Server != "" {
		errs = append(errs, errors.New("--server (joining another server's embedded etcd) is not supported yet; use --datastore-endpoint"))
	}
	return errors.Join(errs...)
}
