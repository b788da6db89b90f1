package hostport

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// Mapping publishes one container port of a pod on the node.
type Mapping struct {
	// HostIP is the node address it answers on; "" or "0.0.0.0": all.
	HostIP string
	// HostPort is the port on the node.
	HostPort int32
	// Protocol is "tcp", "udp" or "sctp" (lower case; "" means tcp).
	Protocol string
	// PodIP and ContainerPort are where the traffic goes.
	PodIP         string
	ContainerPort int32
}

func (m Mapping) proto() string {
	if m.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(m.Protocol)
}

func (m Mapping) wildcard() bool { return m.HostIP == "" || m.HostIP == "0.0.0.0" }

func (m Mapping) target() string {
	return net.JoinHostPort(m.PodIP, strconv.Itoa(int(m.ContainerPort)))
}

// TableName is the nftables table (family ip) of the node whose pod
// bridge is bridge.
func TableName(bridge string) string { return "skiff-hostports-" + bridge }

const (
	hostportsChain   = "hostports"
	preroutingChain  = "prerouting"
	outputChain      = "output"
	postroutingChain = "postrouting"
)

// rules are the chains' rules for mappings, in a stable order: mappings
// to one address before those to every address, so that a specific
// hostIP wins where both would match.
func rules(mappings []Mapping) (dnat, masq []string) {
	ms := slices.Clone(mappings)
	slices.SortStableFunc(ms, func(a, b Mapping) int {
		if a.wildcard() != b.wildcard() {
			if a.wildcard() {
				return 1
			}
			return -1
		}
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	seen := map[string]bool{}
	for _, m := range ms {
		if m.PodIP == "" || m.HostPort <= 0 || net.ParseIP(m.PodIP).To4() == nil {
			continue
		}
		match := "fib daddr type local"
		if !m.wildcard() {
			if net.ParseIP(m.HostIP).To4() == nil {
				continue
			}
			match = "ip daddr " + m.HostIP
		}
		dnat = append(dnat, fmt.Sprintf("%s %s dport %d dnat to %s", match, m.proto(), m.HostPort, m.target()))
		for _, r := range []string{
			fmt.Sprintf("ip saddr 127.0.0.0/8 ct status dnat ip daddr %s %s dport %d masquerade", m.PodIP, m.proto(), m.ContainerPort),
			fmt.Sprintf("ip saddr %s ip daddr %s %s dport %d masquerade", m.PodIP, m.PodIP, m.proto(), m.ContainerPort),
		} {
			if !seen[r] {
				seen[r] = true
				masq = append(masq, r)
			}
		}
	}
	return dnat, masq
}

// Table keeps one node's host port table.
type Table struct {
	bridge string
	nft    knftables.Interface
	// sysctl is the /proc/sys root (a test seam: "" means /proc/sys).
	sysctl string
	// clearUDP deletes UDP conntrack entries to ports (a test seam: nil
	// means the kernel's table).
	clearUDP func(ports []int32) error
	// installed are the mappings the table holds (nil: unknown).
	installed []Mapping
}

// New returns the table of the node whose pod bridge is bridge.
func New(bridge string) (*Table, error) {
	nft, err := knftables.New(knftables.IPv4Family, TableName(bridge))
	if err != nil {
		return nil, fmt.Errorf("host ports: %w", err)
	}
	return &Table{bridge: bridge, nft: nft}, nil
}

// Sync makes the table publish exactly mappings.
func (t *Table) Sync(ctx context.Context, mappings []Mapping) error {
	dnat, masq := rules(mappings)
	tx := t.nft.NewTransaction()
	// Add-then-delete empties the table whether or not it existed.
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff: pods' host ports")})
	tx.Add(&knftables.Chain{Name: hostportsChain})
	for _, r := range dnat {
		tx.Add(&knftables.Rule{Chain: hostportsChain, Rule: r})
	}
	for _, c := range []struct {
		name string
		hook knftables.BaseChainHook
		prio knftables.BaseChainPriority
		rule []string
	}{
		{preroutingChain, knftables.PreroutingHook, knftables.DNATPriority, []string{"jump " + hostportsChain}},
		{outputChain, knftables.OutputHook, knftables.DNATPriority, []string{"fib daddr type local jump " + hostportsChain}},
		{postroutingChain, knftables.PostroutingHook, knftables.SNATPriority, masq},
	} {
		tx.Add(&knftables.Chain{Name: c.name, Type: knftables.PtrTo(knftables.NATType), Hook: knftables.PtrTo(c.hook), Priority: knftables.PtrTo(c.prio)})
		for _, r := range c.rule {
			tx.Add(&knftables.Rule{Chain: c.name, Rule: r})
		}
	}
	if len(dnat) > 0 {
		// Connections to 127.0.0.1:hostPort leave through the bridge
		// with a loopback source: allowed only with route_localnet.
		if err := t.routeLocalnet(); err != nil {
			return err
		}
	}
	if err := t.nft.Run(ctx, tx); err != nil {
		t.installed = nil
		return fmt.Errorf("host ports: write table %s: %w", TableName(t.bridge), err)
	}
	fresh := newUDPPorts(t.installed, mappings)
	t.installed = slices.Clone(mappings)
	clear := t.clearUDP
	if clear == nil {
		clear = deleteUDPFlows
	}
	if len(fresh) > 0 {
		if err := clear(fresh); err != nil {
			return fmt.Errorf("host ports: %w", err)
		}
	}
	return nil
}

func (t *Table) routeLocalnet() error {
	root := t.sysctl
	if root == "" {
		root = "/proc/sys"
	}
	p := filepath.Join(root, "net", "ipv4", "conf", t.bridge, "route_localnet")
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("host ports: enable route_localnet on %s: %w", t.bridge, err)
	}
	return nil
}

// newUDPPorts are the UDP host ports of want that have (the previous
// sync unknown: may have) no mapping in have.
func newUDPPorts(have, want []Mapping) []int32 {
	old := map[int32]bool{}
	for _, m := range have {
		if m.proto() == "udp" {
			old[m.HostPort] = true
		}
	}
	var out []int32
	for _, m := range want {
		if m.proto() == "udp" && !old[m.HostPort] && !slices.Contains(out, m.HostPort) {
			out = append(out, m.HostPort)
		}
	}
	return out
}

// deleteUDPFlows clears the UDP conntrack entries to the ports.
func deleteUDPFlows(ports []int32) error {
	filters := make([]netlink.CustomConntrackFilter, 0, len(ports))
	for _, p := range ports {
		f := &netlink.ConntrackFilter{}
		if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return err
		}
		if err := f.AddPort(netlink.ConntrackOrigDstPort, uint16(p)); err != nil {
			return err
		}
		filters = append(filters, f)
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("delete UDP conntrack entries: %w", err)
	}
	return nil
}

// Teardown deletes the table of the node whose pod bridge is bridge, if
// present (without the nft command there can be none).
func Teardown(ctx context.Context, bridge string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	nft, err := knftables.New(knftables.IPv4Family, TableName(bridge))
	if err != nil {
		return err
	}
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil && !knftables.IsNotFound(err) {
		return fmt.Errorf("delete nftables table %s: %w", TableName(bridge), err)
	}
	return nil
}
