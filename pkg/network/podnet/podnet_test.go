package podnet

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff/skiff/pkg/network/netnstest"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestPodsReachEachOtherThroughTheBridge runs the whole pod network inside
// a network namespace of the test's own (standing in for the node): two
// pod namespaces get addresses from the range and talk over TCP through
// the bridge; detaching frees the address and removes the veth, teardown
// removes the bridge.
func TestPodsReachEachOtherThroughTheBridge(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	// The stand-in node and two pods, each a fresh network namespace.
	node, podA, podB := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	path := func(h netns.NsHandle) string { return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(h)) }
	state := filepath.Join(t.TempDir(), "ipam")
	var n *Network
	var ipA, ipB net.IP
	netnstest.Do(t, node, func() {
		// t.Fatal must not run off the test's goroutine: report and stop.
		var err error
		if n, err = Setup("skftest0", "10.99.0.0/24", state); err != nil {
			t.Error(err)
			return
		}
		if ipA, err = n.Attach(path(podA), "aaaaaaaaaaaaaaaa"); err != nil {
			t.Error(err)
			return
		}
		if ipB, err = n.Attach(path(podB), "bbbbbbbbbbbbbbbb"); err != nil {
			t.Error(err)
			return
		}
		// Hairpin on the bridge ports: a pod reaches itself through a
		// Service.
		l, err := netlink.LinkByName(hostVeth("aaaaaaaaaaaaaaaa"))
		if err != nil {
			t.Error(err)
			return
		}
		if pi, err := netlink.LinkGetProtinfo(l); err != nil || !pi.Hairpin {
			t.Errorf("host veth without hairpin mode: %+v %v", pi, err)
		}
	})
	if t.Failed() {
		return
	}
	if ipA.String() != "10.99.0.2" || ipB.String() != "10.99.0.3" {
		t.Fatalf("addresses %s %s, want 10.99.0.2 and 10.99.0.3", ipA, ipB)
	}
	// Pod A serves, pod B connects to A's address.
	var ln net.Listener
	netnstest.Do(t, podA, func() {
		var err error
		if ln, err = net.Listen("tcp", ipA.String()+":8080"); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("hello from A"))
			c.Close()
		}
	}()
	netnstest.Do(t, podB, func() {
		c, err := net.DialTimeout("tcp", ipA.String()+":8080", 3*time.Second)
		if err != nil {
			t.Errorf("pod B to pod A: %v", err)
			return
		}
		defer c.Close()
		buf := make([]byte, 32)
		k, _ := c.Read(buf)
		if string(buf[:k]) != "hello from A" {
			t.Errorf("read %q", buf[:k])
		}
		// The default route goes through the bridge.
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Error(err)
		}
		gw := false
		for _, r := range routes {
			gw = gw || (r.Gw != nil && r.Gw.String() == "10.99.0.1")
		}
		if !gw {
			t.Errorf("no default route via 10.99.0.1: %v", routes)
		}
	})
	netnstest.Do(t, node, func() {
		if err := n.Detach("aaaaaaaaaaaaaaaa"); err != nil {
			t.Error(err)
		}
		if _, err := netlink.LinkByName(hostVeth("aaaaaaaaaaaaaaaa")); err == nil {
			t.Error("host veth left after detach")
		}
		// The freed address is not reused at once.
		ip, err := n.Attach(path(podA), "cccccccccccccccc")
		if err != nil || ip.String() != "10.99.0.4" {
			t.Errorf("re-attach got %v %v, want 10.99.0.4", ip, err)
		}
		// A restarted runtime keeps the reservations.
		again, err := Setup("skftest0", "10.99.0.0/24", state)
		if err != nil {
			t.Error(err)
			return
		}
		if ip, _ := again.reserve("dddddddddddddddd"); ip.String() != "10.99.0.2" {
			t.Errorf("after restart got %v, want the free 10.99.0.2", ip)
		}
		if err := Teardown("skftest0", state); err != nil {
			t.Error(err)
		}
		if _, err := netlink.LinkByName("skftest0"); err == nil {
			t.Error("bridge left after teardown")
		}
	})
}
