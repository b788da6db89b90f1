package hostgw

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/skiff/skiff/pkg/network/netnstest"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
)

// handleAt is a netlink handle in ns, closed when the test ends.
func handleAt(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ourRoutes lists the routes with hostgw's protocol in h's main table
// as "dst via gw metric N".
func ourRoutes(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: Protocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s via %s metric %d", r.Dst, r.Gw, r.Priority))
	}
	return out
}

// waitForRoutes waits until ourRoutes is want (in any order).
func waitForRoutes(t *testing.T, h *netlink.Handle, want ...string) {
	t.Helper()
	var got []string
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		got = ourRoutes(t, h)
		if len(got) != len(want) {
			return false, nil
		}
		set := map[string]bool{}
		for _, g := range got {
			set[g] = true
		}
		for _, w := range want {
			if !set[w] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("routes %q, want %q", got, want)
	}
}

// TestRoutesInANetworkNamespace runs the controller for node "a" inside
// a network namespace of its own, linked by a veth pair to a second one
// standing in for node "b", against a fake API holding the Nodes: the
// route to b's pod range appears and carries traffic, follows b's
// address, goes with b; a restarted controller removes routes of Nodes
// deleted while it was down; Teardown removes what it installed and
// nothing else.
func TestRoutesInANetworkNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	hA, hB := handleAt(t, nsA), handleAt(t, nsB)
	la := netlink.NewLinkAttrs()
	la.Name = "skft-a"
	must(t, hA.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "skft-b", PeerNamespace: netlink.NsFd(int(nsB))}))
	for _, l := range []struct {
		h     *netlink.Handle
		link  string
		addrs []string
	}{
		{hA, "skft-a", []string{"192.0.2.1/24"}},
		{hB, "skft-b", []string{"192.0.2.2/24", "192.0.2.3/24"}},
		{hB, "lo", []string{"10.99.1.1/24"}}, // b's "pod"
		{hA, "lo", nil},
	} {
		link, err := l.h.LinkByName(l.link)
		must(t, err)
		for _, a := range l.addrs {
			addr, err := netlink.ParseAddr(a)
			must(t, err)
			must(t, l.h.AddrAdd(link, addr))
		}
		must(t, l.h.LinkSetUp(link))
	}
	// Another owner's route to the same range (same protocol, its own
	// metric) must outlive everything below.
	foreign := &netlink.Route{Dst: prefixIPNet(netip.MustParsePrefix("10.99.1.0/24")), Gw: net.ParseIP("192.0.2.2"), Protocol: Protocol, Priority: metricBase - 1}
	must(t, hA.RouteAdd(foreign))
	foreignS := fmt.Sprintf("10.99.1.0/24 via 192.0.2.2 metric %d", metricBase-1)

	client := fake.NewClientset(
		node("a", "10.99.0.0/24", "192.0.2.1"),
		node("b", "10.99.1.0/24", "192.0.2.2"),
		node("c", "10.99.2.0/24", "192.0.2.1"), // on a's host
		node("d", "", "192.0.2.4"),             // no range yet
	)
	dir := t.TempDir()
	m := metricFor(dir)
	clk := testingclock.NewFakeClock(time.Now())
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		f := informers.NewSharedInformerFactory(client, 0)
		r, err := New(Config{NodeName: "a", StateDir: dir, Netlink: hA, Resync: time.Hour, Clock: clk, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, f)
		must(t, err)
		f.Start(ctx.Done())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		stop = func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			f.Shutdown()
		}
		t.Cleanup(func() {
			if ctx.Err() == nil {
				stop()
			}
		})
		return stop
	}
	stop := run()
	waitForRoutes(t, hA, foreignS, fmt.Sprintf("10.99.1.0/24 via 192.0.2.2 metric %d", m))

	// The route carries traffic: a connects to b's pod address.
	var ln net.Listener
	netnstest.Do(t, nsB, func() {
		var err error
		ln, err = net.Listen("tcp", "10.99.1.1:0")
		if err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("pod on b"))
			c.Close()
		}
	}()
	netnstest.Do(t, nsA, func() {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 3*time.Second)
		if err != nil {
			t.Errorf("a to b's pod: %v", err)
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		if string(b) != "pod on b" {
			t.Errorf("read %q", b)
		}
	})

	ctx := context.Background()
	nodes := client.CoreV1().Nodes()
	// b's address changes: the route follows.
	_, err := nodes.Update(ctx, node("b", "10.99.1.0/24", "192.0.2.3"), metav1.UpdateOptions{})
	must(t, err)
	waitForRoutes(t, hA, foreignS, fmt.Sprintf("10.99.1.0/24 via 192.0.2.3 metric %d", m))
	// b goes: so does its route (the foreign one stays).
	must(t, nodes.Delete(ctx, "b", metav1.DeleteOptions{}))
	waitForRoutes(t, hA, foreignS)
	// d gets a range: routed.
	_, err = nodes.Update(ctx, node("d", "10.99.4.0/24", "192.0.2.4"), metav1.UpdateOptions{})
	must(t, err)
	waitForRoutes(t, hA, foreignS, fmt.Sprintf("10.99.4.0/24 via 192.0.2.4 metric %d", m))

	// A route deleted behind hostgw's back is back after a resync period
	// (stepped until the resync ticker has been set up and fired).
	must(t, hA.RouteDel(&netlink.Route{Dst: prefixIPNet(netip.MustParsePrefix("10.99.4.0/24")), Priority: m}))
	waitForRoutes(t, hA, foreignS)
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		clk.Step(time.Hour)
		return len(ourRoutes(t, hA)) == 2, nil
	})
	must(t, err)
	waitForRoutes(t, hA, foreignS, fmt.Sprintf("10.99.4.0/24 via 192.0.2.4 metric %d", m))

	// The agent stops, d is deleted and e added meanwhile; the restarted
	// controller catches up from its state file.
	stop()
	must(t, nodes.Delete(ctx, "d", metav1.DeleteOptions{}))
	_, err = nodes.Create(ctx, node("e", "10.99.5.0/24", "192.0.2.2"), metav1.CreateOptions{})
	must(t, err)
	stop = run()
	waitForRoutes(t, hA, foreignS, fmt.Sprintf("10.99.5.0/24 via 192.0.2.2 metric %d", m))
	stop()

	// Teardown (in a's namespace, as the agent calls it in the host's)
	// removes e's route and nothing else.
	netnstest.Do(t, nsA, func() {
		if err := Teardown(dir); err != nil {
			t.Error(err)
		}
	})
	waitForRoutes(t, hA, foreignS)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state dir after teardown: %v", err)
	}
}
