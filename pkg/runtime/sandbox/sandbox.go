// Package sandbox makes and removes pod sandboxes: the network, IPC and
// UTS namespaces a pod's containers share, kept alive by bind mounts of
// their namespace files (no pause process), and the /etc/hosts,
// /etc/hostname and /etc/resolv.conf files the containers mount.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
)

// Namespace kinds a sandbox holds.
var kinds = []struct {
	name string
	flag int
}{{"net", unix.CLONE_NEWNET}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS}}

// Config describes a sandbox to create.
type Config struct {
	// Dir holds the sandbox's namespace files and generated /etc files.
	Dir      string
	Hostname string
	// Hosts are extra /etc/hosts lines ("ip name...").
	Hosts []string
	// ResolvConf is the content of /etc/resolv.conf.
	ResolvConf string
	// Sysctls are set in the sandbox's own namespaces (name, in dots or
	// slashes form, to value); only IPC, net and UTS sysctls are allowed,
	// since any other would change the host's.
	Sysctls map[string]string
}

// Sandbox is a created sandbox.
type Sandbox struct {
	Dir string
}

// NamespacePath returns the bind-mounted namespace file of kind ("net",
// "ipc", "uts").
func (s Sandbox) NamespacePath(kind string) string { return filepath.Join(s.Dir, "ns", kind) }

// File returns the path of a generated file ("hosts", "hostname",
// "resolv.conf").
func (s Sandbox) File(name string) string { return filepath.Join(s.Dir, "etc", name) }

// Create makes the namespaces (loopback up, hostname set) and files.
func Create(cfg Config) (Sandbox, error) {
	sb := Sandbox{Dir: cfg.Dir}
	for _, d := range []string{"ns", "etc"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return sb, err
		}
	}
	if err := makeNamespaces(sb, cfg.Hostname, cfg.Sysctls); err != nil {
		_ = Remove(cfg.Dir)
		return sb, err
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	for _, h := range cfg.Hosts {
		hosts += h + "\n"
	}
	files := map[string]string{"hosts": hosts, "hostname": cfg.Hostname + "\n", "resolv.conf": cfg.ResolvConf}
	for name, content := range files {
		if err := os.WriteFile(sb.File(name), []byte(content), 0o644); err != nil {
			_ = Remove(cfg.Dir)
			return sb, err
		}
	}
	return sb, nil
}

// makeNamespaces unshares new namespaces on a locked OS thread, sets them
// up, pins them with bind mounts and lets the thread die with them, so no
// other goroutine ever runs in them.
func makeNamespaces(sb Sandbox, hostname string, sysctls map[string]string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is never unlocked: it exits with this goroutine.
		errc <- func() error {
			flags := 0
			for _, k := range kinds {
				flags |= k.flag
			}
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("sethostname: %w", err)
			}
			ns, err := netns.Get()
			if err != nil {
				return err
			}
			defer ns.Close()
			h, err := netlink.NewHandleAt(ns)
			if err != nil {
				return err
			}
			defer h.Close()
			lo, err := h.LinkByName("lo")
			if err != nil {
				return fmt.Errorf("loopback: %w", err)
			}
			if err := h.LinkSetUp(lo); err != nil {
				return fmt.Errorf("loopback up: %w", err)
			}
			// This thread is in the new namespaces: /proc/sys writes of
			// namespaced sysctls land in them.
			if err := setSysctls(sysctls); err != nil {
				return err
			}
			tid := unix.Gettid()
			for _, k := range kinds {
				target := sb.NamespacePath(k.name)
				f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
				if err != nil {
					return err
				}
				f.Close()
				src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, k.name)
				if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("pin %s namespace: %w", k.name, err)
				}
			}
			return nil
		}()
	}()
	return <-errc
}

// Remove unmounts the sandbox's namespaces (destroying them once no
// container uses them) and deletes its directory. Removing a missing or
// half-made sandbox is not an error.
func Remove(dir string) error {
	var errs []error
	for _, k := range kinds {
		p := filepath.Join(dir, "ns", k.name)
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ResolvConf renders an /etc/resolv.conf.
func ResolvConf(nameservers, searches, options []string) string {
	var b strings.Builder
	if len(searches) > 0 {
		b.WriteString("search " + strings.Join(searches, " ") + "\n")
	}
	for _, ns := range nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return b.String()
}

// DialContext connects to address from inside the sandbox's network
// namespace. The socket is made on a thread that has entered the
// namespace; a socket stays in the namespace it was made in, so the
// connection can be used from any goroutine afterwards.
func (s Sandbox) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, back, err := s.dialLocked(ctx, network, address)
		if back {
			runtime.UnlockOSThread()
		}
		// Otherwise the thread is still in the pod's namespace and exits
		// with this goroutine.
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// dialLocked dials from the namespace on the locked current thread; back
// reports whether the thread is in its original namespace again.
func (s Sandbox) dialLocked(ctx context.Context, network, address string) (conn net.Conn, back bool, err error) {
	orig, err := netns.Get()
	if err != nil {
		return nil, true, err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(s.NamespacePath("net"))
	if err != nil {
		return nil, true, fmt.Errorf("sandbox network namespace: %w", err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, netns.Set(orig) == nil, fmt.Errorf("enter sandbox network namespace: %w", err)
	}
	var d net.Dialer
	conn, err = d.DialContext(ctx, network, address)
	return conn, netns.Set(orig) == nil, err
}

// setSysctls writes namespaced sysctls through /proc/sys, in name order,
// from a thread inside the sandbox's namespaces.
func setSysctls(sysctls map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(sysctls)) {
		path, err := sysctlPath(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(sysctls[name]), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", name, sysctls[name], err)
		}
	}
	return nil
}

// sysctlPath is the /proc/sys file of a namespaced sysctl; others are
// refused.
func sysctlPath(name string) (string, error) {
	ns, norm, prefixed := utilsysctl.GetNamespace(name)
	if prefixed || (ns != utilsysctl.IPCNamespace && ns != utilsysctl.NetNamespace && ns != utilsysctl.UTSNamespace) {
		return "", fmt.Errorf("sysctl %q is not namespaced: setting it would change the host's", name)
	}
	// Dots form to a path: "net.ipv4.conf.eth0/100.rp_filter" is
	// net/ipv4/conf/eth0.100/rp_filter.
	rel := strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, norm)
	if strings.Contains(rel, "..") || strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("sysctl %q: bad name", name)
	}
	return filepath.Join("/proc/sys", rel), nil
}
