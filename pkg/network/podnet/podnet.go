// Package podnet wires pods into a node's pod network, the bridge model
// of CNI's bridge and host-local plugins done in-process with netlink: a
// Linux bridge holds the first address of the node's pod range and is
// every pod's gateway; each pod gets a veth pair (eth0 in the pod's
// network namespace, the host end on the bridge), the next free address
// of the range and a default route via the bridge. Addresses are reserved
// as files (named by the address, holding the sandbox ID), so a restarted
// runtime never hands one out twice.
package podnet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// mtu is the pods' MTU (loopback-scale host links carry 1500 fine).
const mtu = 1500

// Network is one node's pod network.
type Network struct {
	bridge string
	cidr   *net.IPNet
	gw     net.IP
	dir    string

	mu   sync.Mutex
	last int // offset of the last address handed out
}

// BridgeName is the bridge of the runtime whose state is under root:
// distinct per node so several clusters can share a machine.
func BridgeName(root string) string {
	sum := sha256.Sum256([]byte(root))
	return "skf" + hex.EncodeToString(sum[:])[:8]
}

// Setup makes (or adopts) the bridge with the gateway address of podCIDR
// and turns on forwarding; reservations live in stateDir.
func Setup(bridge, podCIDR, stateDir string) (*Network, error) {
	ip, cidr, err := net.ParseCIDR(podCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR: %w", err)
	}
	if ip.To4() == nil {
		return nil, fmt.Errorf("pod CIDR %s: only IPv4 pod ranges are supported", podCIDR)
	}
	if ones, _ := cidr.Mask.Size(); ones > 30 {
		return nil, fmt.Errorf("pod CIDR %s is too small", podCIDR)
	}
	n := &Network{bridge: bridge, cidr: cidr, gw: offset(cidr, 1), dir: stateDir}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU = bridge, mtu
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create bridge %s: %w", bridge, err)
		}
		if br, err = netlink.LinkByName(bridge); err != nil {
			return nil, err
		}
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.gw, Mask: cidr.Mask}}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	has := false
	for _, a := range addrs {
		if a.IPNet.String() == gw.IPNet.String() {
			has = true
		} else {
			_ = netlink.AddrDel(br, &a) // a range from an earlier pod CIDR
		}
	}
	if !has {
		if err := netlink.AddrAdd(br, gw); err != nil {
			return nil, fmt.Errorf("address bridge %s: %w", bridge, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("bridge %s up: %w", bridge, err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return nil, fmt.Errorf("enable forwarding: %w", err)
	}
	return n, nil
}

// CIDR is the node's pod range.
func (n *Network) CIDR() *net.IPNet { return n.cidr }

// offset returns the address i after the network address of cidr.
func offset(cidr *net.IPNet, i int) net.IP {
	v := new(big.Int).SetBytes(cidr.IP.To4())
	v.Add(v, big.NewInt(int64(i)))
	b := v.Bytes()
	ip := make(net.IP, 4)
	copy(ip[4-len(b):], b)
	return ip
}

func (n *Network) size() int {
	ones, bits := n.cidr.Mask.Size()
	return 1 << (bits - ones)
}

// reserve takes the next free address for id (2 .. size-2: not the
// network, gateway or broadcast address), after the last one taken so
// that a released address is not reused at once.
func (n *Network) reserve(id string) (net.IP, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	size := n.size()
	for k := range size {
		i := (n.last + 1 + k) % size
		if i < 2 || i > size-2 {
			continue
		}
		ip := offset(n.cidr, i)
		f, err := os.OpenFile(filepath.Join(n.dir, ip.String()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_, werr := f.WriteString(id)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(f.Name())
			return nil, werr
		}
		n.last = i
		return ip, nil
	}
	return nil, fmt.Errorf("no free address in %s", n.cidr)
}

// release frees the addresses reserved for id.
func (n *Network) release(id string) error {
	entries, err := os.ReadDir(n.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(n.dir, e.Name())
		if b, err := os.ReadFile(p); err == nil && string(b) == id {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// hostVeth names the host end of id's veth pair.
func hostVeth(id string) string { return "sk" + strings.ToLower(id)[:12] }

// Attach gives the network namespace at netnsPath an address and a route
// out through the bridge; it returns the pod's address.
func (n *Network) Attach(netnsPath, id string) (net.IP, error) {
	if len(id) < 12 {
		return nil, fmt.Errorf("sandbox id %q too short", id)
	}
	ip, err := n.reserve(id)
	if err != nil {
		return nil, err
	}
	if err := n.wire(netnsPath, id, ip); err != nil {
		_ = n.Detach(id)
		return nil, err
	}
	return ip, nil
}

func (n *Network) wire(netnsPath, id string, ip net.IP) error {
	br, err := netlink.LinkByName(n.bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.bridge, err)
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("pod network namespace: %w", err)
	}
	defer ns.Close()
	host, peer := hostVeth(id), "skp"+strings.ToLower(id)[:12]
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU, la.MasterIndex = host, mtu, br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", host, err)
	}
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return err
	}
	// Hairpin: a pod's packet to its own Service comes back out of the
	// port it entered by (the bridge delivers DNATed traffic at layer 2).
	if err := netlink.LinkSetHairpin(hl, true); err != nil {
		return fmt.Errorf("veth %s hairpin: %w", host, err)
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		return fmt.Errorf("veth %s up: %w", host, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	pl, err := h.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("pod end of veth: %w", err)
	}
	if err := h.LinkSetName(pl, "eth0"); err != nil {
		return fmt.Errorf("rename pod end to eth0: %w", err)
	}
	if err := h.AddrAdd(pl, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: n.cidr.Mask}}); err != nil {
		return fmt.Errorf("address eth0: %w", err)
	}
	if err := h.LinkSetUp(pl); err != nil {
		return fmt.Errorf("eth0 up: %w", err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: pl.Attrs().Index, Gw: n.gw}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return nil
}

// Detach removes id's host veth (the pod end goes with it) and frees its
// address. Detaching what is not attached is not an error.
func (n *Network) Detach(id string) error {
	if len(id) >= 12 {
		if l, err := netlink.LinkByName(hostVeth(id)); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("delete veth: %w", err)
			}
		}
	}
	return n.release(id)
}

// Teardown deletes the bridge and the reservations: everything Setup and
// Attach made on the host (pods' veths go with their namespaces).
func Teardown(bridge, stateDir string) error {
	if l, err := netlink.LinkByName(bridge); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("delete bridge %s: %w", bridge, err)
		}
	}
	return os.RemoveAll(stateDir)
}
