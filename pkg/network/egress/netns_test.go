package egress

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/pkg/network/netnstest"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// link configures a link of h: addresses, up, and routes ("dst via gw").
func link(t *testing.T, h *netlink.Handle, name string, addrs []string, routes ...[2]string) {
	t.Helper()
	l, err := h.LinkByName(name)
	must(t, err)
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(a)
		must(t, err)
		must(t, h.AddrAdd(l, addr))
	}
	must(t, h.LinkSetUp(l))
	for _, r := range routes {
		rt := &netlink.Route{Gw: net.ParseIP(r[1])}
		if r[0] != "default" {
			_, rt.Dst, err = net.ParseCIDR(r[0])
			must(t, err)
		}
		must(t, h.RouteAdd(rt))
	}
}

// TestMasqueradeInANetworkNamespace builds, of network namespaces, a
// node with a pod behind it, a host outside the cluster with no route to
// the pod range (the pod reaches it only masqueraded), and another node
// with a pod of its own and routes both ways as hostgw makes them (the
// pod reaches that pod with its own address).
func TestMasqueradeInANetworkNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft binary (Debian package nftables)")
	}
	node, pod, peer, far := netnstest.New(t), netnstest.New(t), netnstest.New(t), netnstest.New(t)
	h := map[netns.NsHandle]*netlink.Handle{}
	for _, ns := range []netns.NsHandle{node, pod, peer, far} {
		nh, err := netlink.NewHandleAt(ns)
		must(t, err)
		t.Cleanup(nh.Close)
		h[ns] = nh
	}
	veth := func(name, peer string, peerNS netns.NsHandle) {
		la := netlink.NewLinkAttrs()
		la.Name = name
		must(t, h[node].LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(int(peerNS))}))
	}
	veth("skft-pod", "eth0", pod)
	veth("skft-peer", "skft-node", peer)
	veth("skft-far", "skft-node", far)
	link(t, h[node], "lo", nil)
	link(t, h[node], "skft-pod", []string{"10.77.1.1/24"})
	link(t, h[node], "skft-peer", []string{"192.0.2.1/24"}, [2]string{"10.77.2.0/24", "192.0.2.2"})
	link(t, h[node], "skft-far", []string{"198.51.100.1/24"})
	link(t, h[pod], "lo", nil)
	link(t, h[pod], "eth0", []string{"10.77.1.2/24"}, [2]string{"default", "10.77.1.1"})
	link(t, h[peer], "lo", []string{"10.77.2.1/24"}) // the other node's pod
	link(t, h[peer], "skft-node", []string{"192.0.2.2/24"}, [2]string{"10.77.1.0/24", "192.0.2.1"})
	link(t, h[far], "lo", nil)
	link(t, h[far], "skft-node", []string{"198.51.100.2/24"})
	netnstest.Do(t, node, func() {
		// /proc/sys/net is the namespace of the thread that opens it.
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			t.Error(err)
		}
	})
	// One listener outside the cluster, one on the other node's pod; each
	// answers with the address it sees the client as.
	listen := func(ns netns.NsHandle, addr string) string {
		var ln net.Listener
		netnstest.Do(t, ns, func() {
			var err error
			if ln, err = net.Listen("tcp", addr); err != nil {
				t.Error(err)
			}
		})
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				_, _ = io.WriteString(c, host)
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	internet, otherPod := listen(far, "198.51.100.2:0"), listen(peer, "10.77.2.1:0")
	// seenAs dials addr from the pod and returns the client address the
	// server saw ("" when the connection failed).
	seenAs := func(addr string, timeout time.Duration) string {
		var seen string
		netnstest.Do(t, pod, func() {
			c, err := net.DialTimeout("tcp", addr, timeout)
			if err != nil {
				return
			}
			defer c.Close()
			b, _ := io.ReadAll(c)
			seen = string(b)
		})
		return seen
	}
	if got := seenAs(internet, 300*time.Millisecond); got != "" {
		t.Fatalf("without masquerade the pod reached the outside as %q: the test network is wrong", got)
	}

	const bridge = "skftest"
	var m *Masquerade
	ctx := context.Background()
	netnstest.Do(t, node, func() {
		var err error
		if m, err = New(Config{Bridge: bridge, ClusterCIDR: "10.77.0.0/16", Log: quiet}, nil); err != nil {
			t.Error(err)
			return
		}
		for range 2 { // idempotent
			if err := m.Sync(ctx, "10.77.1.0/24"); err != nil {
				t.Error(err)
			}
		}
	})
	nft := func(args ...string) (string, error) {
		var b []byte
		var err error
		netnstest.Do(t, node, func() { b, err = exec.Command("nft", args...).CombinedOutput() })
		return string(b), err
	}
	table, err := nft("list", "table", "ip", TableName(bridge))
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, table)
	}
	if n := strings.Count(table, " masquerade fully-random"); n != 1 || !strings.Contains(table, "ip saddr 10.77.1.0/24 ip daddr != 10.77.0.0/16") {
		t.Errorf("table after two syncs:\n%s", table)
	}
	if out, err := exec.Command("nft", "list", "table", "ip", TableName(bridge)).CombinedOutput(); err == nil {
		t.Errorf("the table is in the test's own network namespace too:\n%s", out)
	}

	if got := seenAs(internet, 3*time.Second); got != "198.51.100.1" {
		t.Errorf("pod to the outside seen as %q, want the node's 198.51.100.1", got)
	}
	if got := seenAs(otherPod, 3*time.Second); got != "10.77.1.2" {
		t.Errorf("pod to another node's pod seen as %q, want its own 10.77.1.2", got)
	}

	netnstest.Do(t, node, func() {
		for range 2 { // a second teardown finds nothing and is fine
			if err := Teardown(ctx, bridge); err != nil {
				t.Error(err)
			}
		}
	})
	if out, err := nft("list", "table", "ip", TableName(bridge)); err == nil {
		t.Errorf("table after teardown:\n%s", out)
	}
}
