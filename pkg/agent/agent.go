// Package agent assembles the worker-node half of skiff: it registers the
// Node and keeps its status and lease fresh (and, as the issues land, runs
// pods). It runs inside `skiff server` for the server's own node and alone
// as `skiff agent` on other machines; either way it is only an API client.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/utils/clock"

	"golang.org/x/sys/unix"

	"github.com/skiff/skiff/pkg/kubelet"
	"github.com/skiff/skiff/pkg/kubelet/imagegc"
	"github.com/skiff/skiff/pkg/kubelet/logrotate"
	"github.com/skiff/skiff/pkg/kubelet/nodestatus"
	"github.com/skiff/skiff/pkg/machine"
	"github.com/skiff/skiff/pkg/mounts"
	"github.com/skiff/skiff/pkg/network/egress"
	"github.com/skiff/skiff/pkg/network/hostgw"
	"github.com/skiff/skiff/pkg/network/hostport"
	"github.com/skiff/skiff/pkg/network/podnet"
	"github.com/skiff/skiff/pkg/proxy"
	"github.com/skiff/skiff/pkg/runtime/cri"
	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/pkg/runtime/images"
	"github.com/skiff/skiff/pkg/runtime/runc"
	"github.com/skiff/skiff/pkg/version"
	"github.com/skiff/skiff/pkg/volume/localpath"
)

// ControlPlaneLabel marks nodes that run the control plane.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

// DefaultKubeletPort is where the kubelet serves, unless it is taken (by
// another cluster's kubelet on this machine), in which case a free port is
// used and advertised in the Node's status.
const DefaultKubeletPort = 10250

// Config configures an agent.
type Config struct {
	// DataDir is the node's state directory (<data-dir>/agent).
	DataDir string
	// StorageDir holds the node's local-path volumes; it defaults to
	// <data-dir>/storage (beside DataDir, as k3s keeps it).
	StorageDir string
	// NodeName defaults to the lower-cased hostname.
	NodeName string
	// NodeIP is the node's InternalIP; detected when empty.
	NodeIP string
	// ControlPlane labels the node as a control-plane node.
	ControlPlane bool
	// RESTConfig reaches the API server as this node.
	RESTConfig *rest.Config
	// ClusterDNS and ClusterDomain fill pods' resolv.conf; the node serves
	// cluster DNS at ClusterDNS. ClusterCIDR is the pod network. Empty
	// ones are taken from the server (kube-system/skiff-config).
	ClusterDNS, ClusterDomain, ClusterCIDR string
	// NodeLeaseRenewInterval is how often the node's Lease is renewed
	// (default 10s, or the server's published setting).
	NodeLeaseRenewInterval time.Duration
	// ServiceCIDR is the range cluster IPs come from: the service proxy
	// drops traffic to its unallocated addresses. Empty: taken from the
	// server with the others, else no such rule.
	ServiceCIDR string
	// CleanupOnExit stops every pod and the container runtime when the
	// agent stops, leaving nothing behind.
	CleanupOnExit bool
	// ServingCert is the kubelet's HTTPS certificate; ClientCAs verify the
	// API server calling it.
	ServingCert tls.Certificate
	ClientCAs   *x509.CertPool
	// Kubelet holds the --kubelet-arg settings; zero means the defaults.
	Kubelet *KubeletOptions
	Log     *slog.Logger
}

// DefaultNodeName is the lower-cased hostname, as upstream defaults it.
func DefaultNodeName() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("hostname: %w", err)
	}
	return strings.ToLower(h), nil
}

// ImagesDropDir is the directory whose tarballs the agent imports at start,
// as k3s does with <data-dir>/agent/images.
func ImagesDropDir(agentDir string) string { return filepath.Join(agentDir, "images") }

// Run runs the agent until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.RESTConfig == nil {
		return errors.New("agent: no API server configuration")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	opts := DefaultKubeletOptions()
	if cfg.Kubelet != nil {
		opts = *cfg.Kubelet
	}
	if cfg.NodeName == "" {
		name, err := DefaultNodeName()
		if err != nil {
			return err
		}
		cfg.NodeName = name
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("agent data dir: %w", err)
	}
	store, err := images.Open(daemon.ImageStoreDir(cfg.DataDir))
	if err != nil {
		return err
	}
	imported, errs := store.ImportDir(ctx, ImagesDropDir(cfg.DataDir))
	for f, err := range errs {
		cfg.Log.Error("import image tarball", "file", f, "err", err)
	}
	if len(imported) > 0 {
		cfg.Log.Info("imported image tarballs", "images", len(imported))
	}
	client, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return err
	}
	labels := map[string]string{}
	if cfg.ControlPlane {
		labels[ControlPlaneLabel] = "true"
	}
	addrs := []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: cfg.NodeName}}
	if ip := cfg.NodeIP; ip != "" {
		addrs = append([]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}, addrs...)
	}
	if err := fillClusterSettings(ctx, client, &cfg); err != nil {
		return err
	}
	rt, im, err := runtimeClients(ctx, cfg.DataDir, cfg.Log)
	if err != nil {
		if cfg.CleanupOnExit {
			// Stopped while the runtime was starting: it goes too.
			_ = daemon.Stop(cfg.DataDir)
		}
		return err
	}
	kl := kubelet.New(kubelet.Config{
		NodeName: cfg.NodeName, NodeIP: cfg.NodeIP, Client: client, Runtime: rt, Images: im,
		RootDir: cfg.DataDir, ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain,
		PodCIDRWait: podCIDRWait, Log: cfg.Log.With("component", "kubelet"),
	})
	port, err := kl.Serve(ctx, kubelet.ServerConfig{Ports: []int{DefaultKubeletPort, 0}, Cert: cfg.ServingCert, ClientCAs: cfg.ClientCAs})
	if err != nil {
		return err
	}
	hb := nodestatus.New(client, nodestatus.Config{
		KubeletPort:             int32(port),
		NodeName:                cfg.NodeName,
		Labels:                  labels,
		Addresses:               addrs,
		KubeletVersion:          version.Info().GitVersion,
		ContainerRuntimeVersion: "skiff://" + version.Info().GitVersion,
		ReadMachine:             func() (machine.Info, error) { return machine.Read(cfg.DataDir) },
		LeaseRenewInterval:      cfg.NodeLeaseRenewInterval,
		Log:                     cfg.Log.With("component", "node-status"),
	})
	gc := imagegc.New(opts.ImageGC, rt, im, fsStats(daemon.ImageStoreDir(cfg.DataDir)), clock.RealClock{}, cfg.Log.With("component", "image-gc"))
	go gc.Run(ctx, gcPeriod, func(err error) { kl.NodeEvent(corev1.EventTypeWarning, "ImageGCFailed", err.Error()) })
	go logrotate.New(opts.Logs, rt, clock.RealClock{}, cfg.Log.With("component", "log-rotation")).Run(ctx, opts.LogMonitorInterval)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 3)
	servicesDone := make(chan struct{})
	go func() { errc <- hb.Run(ctx) }()
	go func() { errc <- kl.Run(ctx) }()
	go runLocalPath(ctx, cfg, client)
	go func() {
		defer close(servicesDone)
		if err := runServices(ctx, cfg, client); err != nil {
			errc <- fmt.Errorf("services: %w", err)
		}
	}()
	err = <-errc
	stop()
	// Routes and rules are removed only once nothing writes them.
	<-servicesDone
	if cfg.CleanupOnExit {
		// ctx is done: clean up with a fresh one.
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if cerr := cleanup(cctx, rt, cfg.DataDir); cerr != nil {
			cfg.Log.Error("cleanup on exit", "err", cerr)
		}
	}
	return err
}

// runLocalPath runs the node's local-path provisioner until ctx ends. Its
// failure is logged, not fatal: pods without local-path claims still run.
func runLocalPath(ctx context.Context, cfg Config, client kubernetes.Interface) {
	dir := cfg.StorageDir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(cfg.DataDir), "storage")
	}
	log := cfg.Log.With("component", "local-path")
	p, err := localpath.New(localpath.Config{NodeName: cfg.NodeName, Client: client, Dir: dir, Log: log})
	if err == nil {
		err = p.Run(ctx)
	}
	if err != nil && ctx.Err() == nil {
		log.Error("local-path provisioner stopped", "err", err)
	}
}

// cleanup stops and removes every pod sandbox, then the runtime process,
// the pod network bridge, every mount under the node's directory and the
// runtime's state.
func cleanup(ctx context.Context, rt internalapi.RuntimeService, agentDir string) error {
	sbs, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range sbs {
		errs = append(errs, rt.StopPodSandbox(ctx, sb.Id), rt.RemovePodSandbox(ctx, sb.Id))
	}
	root := filepath.Join(agentDir, "runtime")
	errs = append(errs, daemon.Stop(agentDir), podnet.Teardown(cri.Bridge(root), cri.IPAMDir(root)), proxy.Cleanup(ctx, ProxyTable(root)), hostport.Teardown(ctx, cri.Bridge(root)),
		hostgw.Teardown(hostgwDir(agentDir)), egress.Teardown(ctx, cri.Bridge(root)),
		// Whatever state pods were in, none of their mounts survives.
		mounts.UnmountUnder(agentDir), os.RemoveAll(root), os.RemoveAll(filepath.Join(agentDir, "pods")),
		runc.RemoveCgroup(daemon.CgroupRoot(agentDir)))
	// The shared parent goes when no other node on the machine uses it.
	_ = runc.RemoveEmptyCgroup(path.Dir(daemon.CgroupRoot(agentDir)))
	return errors.Join(errs...)
}

// HostIP returns the address of the interface that routes outwards, else
// the first non-loopback IPv4 address, else loopback.
func HostIP() string {
	// A UDP "connection" sends nothing; it only consults the routing table.
	if c, err := net.Dial("udp", "192.0.2.1:9"); err == nil {
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsLoopback() {
			return a.IP.String()
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}

// fsStats reports the capacity and free bytes of the filesystem holding dir.
func fsStats(dir string) imagegc.FsStats {
	return func() (uint64, uint64, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
	}
}

// Cleanup removes what a node whose agent has stopped without
// --cleanup-on-exit left behind (its pods, runtime process, pod network,
// rules, mounts and cgroups), as --cleanup-on-exit would have on exit. It
// starts the node's runtime if it is not running, to stop the pods
// through it, and must run in the node's network namespace.
func Cleanup(ctx context.Context, agentDir string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	rt, _, err := runtimeClients(ctx, agentDir, log)
	if err != nil {
		return fmt.Errorf("cleanup %s: %w", agentDir, err)
	}
	return cleanup(ctx, rt, agentDir)
}
