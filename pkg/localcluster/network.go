package localcluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The host side of a cluster's network is a bridge holding the subnet's
// first address; each node is a namespace whose eth0 is the peer of a
// veth on the bridge, with a default route via the bridge. All nodes are
// on one L2 segment, so skiff's host-gw routes between node addresses
// (installed by each node in its own namespace) carry pod traffic.

// run runs argv and returns an error carrying its output.
func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetNS is argv run in the network namespace ns (only the network
// namespace: `ip netns exec` would remount /sys and hide the cgroups).
func inNetNS(ns string, argv ...string) []string {
	return append([]string{"nsenter", "--net=/run/netns/" + ns, "--"}, argv...)
}

// PickSubnet returns the first 10.200.X.0/24 that overlaps none of used.
func PickSubnet(used []*net.IPNet) (*net.IPNet, error) {
	for x := 0; x < 256; x++ {
		cand := &net.IPNet{IP: net.IPv4(10, 200, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)}
		free := true
		for _, u := range used {
			if u.Contains(cand.IP) || cand.Contains(u.IP) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return nil, fmt.Errorf("no free /24 in 10.200.0.0/16")
}

// HostRoutes returns the destinations of the host's IPv4 routes.
func HostRoutes() ([]*net.IPNet, error) {
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("ip route: %w", err)
	}
	return parseRoutes(string(out)), nil
}

// parseRoutes reads the destinations of `ip route` output, skipping the
// default route.
func parseRoutes(out string) []*net.IPNet {
	var nets []*net.IPNet
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unicast" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if _, n, err := net.ParseCIDR(dst); err == nil {
			nets = append(nets, n)
		}
	}
	return nets
}

// NthIP is the n-th address of subnet (1 is the bridge's).
func NthIP(subnet *net.IPNet, n int) net.IP {
	ip := subnet.IP.To4()
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	v += uint32(n)
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4()
}

// setupBridge makes the cluster's bridge with the subnet's first address
// and turns on forwarding.
func setupBridge(bridge string, subnet *net.IPNet) error {
	ones, _ := subnet.Mask.Size()
	for _, argv := range [][]string{
		{"ip", "link", "add", bridge, "type", "bridge"},
		{"ip", "addr", "add", fmt.Sprintf("%s/%d", NthIP(subnet, 1), ones), "dev", bridge},
		{"ip", "link", "set", bridge, "up"},
	} {
		if err := run(argv...); err != nil {
			return fmt.Errorf("bridge %s: %w", bridge, err)
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("ip_forward: %w", err)
	}
	return nil
}

// setupNode makes the node's namespace and veth pair, with its address,
// lo up, a default route via the bridge and forwarding on.
func setupNode(bridge string, subnet *net.IPNet, n *Node) error {
	ones, _ := subnet.Mask.Size()
	gw := NthIP(subnet, 1).String()
	steps := [][]string{
		{"ip", "netns", "add", n.NetNS},
		{"ip", "link", "add", n.HostLink, "type", "veth", "peer", "name", "eth0", "netns", n.NetNS},
		{"ip", "link", "set", n.HostLink, "master", bridge},
		{"ip", "link", "set", n.HostLink, "up"},
		inNetNS(n.NetNS, "ip", "link", "set", "lo", "up"),
		inNetNS(n.NetNS, "ip", "addr", "add", fmt.Sprintf("%s/%d", n.IP, ones), "dev", "eth0"),
		inNetNS(n.NetNS, "ip", "link", "set", "eth0", "up"),
		inNetNS(n.NetNS, "ip", "route", "add", "default", "via", gw),
		inNetNS(n.NetNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
	}
	for _, argv := range steps {
		if err := run(argv...); err != nil {
			return fmt.Errorf("node %s network: %w", n.Name, err)
		}
	}
	return nil
}

// teardownNode deletes the node's namespace and veth pair (deleting the
// namespace destroys the pair and whatever routes and nftables tables
// were inside).
func teardownNode(n *Node) error {
	var errs []string
	if linkExists(n.HostLink) {
		if err := run("ip", "link", "del", n.HostLink); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if netnsExists(n.NetNS) {
		if err := run("ip", "netns", "del", n.NetNS); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// teardownBridge deletes the bridge (and with it its address and route).
func teardownBridge(bridge string) error {
	if !linkExists(bridge) {
		return nil
	}
	return run("ip", "link", "del", bridge)
}

// setLink sets the host end of a node's veth up or down: down cuts the
// node off the bridge (a partition) while everything in it keeps running.
func setLink(link string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if err := run("ip", "link", "set", link, state); err != nil {
		return err
	}
	// Up takes a moment to carry traffic (carrier, bridge port state):
	// heal returns once it does.
	for i := 0; up && i < 100 && !operUp(link); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func operUp(link string) bool {
	b, err := os.ReadFile("/sys/class/net/" + link + "/operstate")
	return err == nil && strings.TrimSpace(string(b)) == "up"
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

func netnsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}
