package framework

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NetNSPrefix starts the name of every network namespace the tests make.
const NetNSPrefix = "skfe2e-"

// NetNS is a named network namespace joined to the host by a veth pair
// on a private /30 of 192.168.250.0/24, with a default route via the
// host, so that a node started in it is another machine as far as
// routing goes: traffic to it leaves the host through HostLink.
type NetNS struct {
	// Name is the namespace's name (/run/netns/<Name>).
	Name string
	// HostLink is the host's end of the veth pair; the other end is
	// eth0 inside the namespace.
	HostLink string
	// HostIP and IP are the host's and the namespace's addresses on the
	// pair (a /30).
	HostIP, IP string
}

// Path is the namespace's bind mount, for nsenter --net.
func (n *NetNS) Path() string { return filepath.Join("/run/netns", n.Name) }

// NewNetNS makes a network namespace wired to the host (forwarding on
// in both), removed when the test ends: first every process still in
// it is killed, then the namespace and the veth pair are deleted.
// Processes started in it with StartProcessIn are stopped before that,
// since their cleanups, registered later, run first.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	suffix := randomHex(t, 4)
	n := &NetNS{Name: NetNSPrefix + suffix, HostLink: "e2ev" + suffix}
	// A /30 not used on this host yet: concurrent runs pick others.
	for try := 0; ; try++ {
		k, err := rand.Int(rand.Reader, big.NewInt(64))
		if err != nil {
			t.Fatal(err)
		}
		base := 4 * int(k.Int64())
		n.HostIP, n.IP = fmt.Sprintf("192.168.250.%d", base+1), fmt.Sprintf("192.168.250.%d", base+2)
		out, _ := exec.Command("ip", "-4", "route", "show", "192.168.250."+strconv.Itoa(base)+"/30").CombinedOutput()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if try == 20 {
			t.Fatalf("no free /30 in 192.168.250.0/24")
		}
	}
	mustRun(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { n.remove(t) })
	mustRun(t, "ip", "link", "add", n.HostLink, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
	mustRun(t, "ip", "addr", "add", n.HostIP+"/30", "dev", n.HostLink)
	mustRun(t, "ip", "link", "set", n.HostLink, "up")
	n.MustRun(t, "ip", "link", "set", "lo", "up")
	n.MustRun(t, "ip", "addr", "add", n.IP+"/30", "dev", "eth0")
	n.MustRun(t, "ip", "link", "set", "eth0", "up")
	n.MustRun(t, "ip", "route", "add", "default", "via", n.HostIP)
	n.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// The host usually forwards already (every node's pod network needs
	// it), so it is left on.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

// Command is argv run inside the namespace with nsenter: only the
// network namespace changes (unlike `ip netns exec`, which remounts /sys
// and so hides the host's cgroups from a node).
func (n *NetNS) Command(argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + n.Path(), "--"}, argv...)...)
}

// Run runs argv in the namespace and returns its combined output.
func (n *NetNS) Run(argv ...string) (string, error) {
	out, err := n.Command(argv...).CombinedOutput()
	return string(out), err
}

// MustRun runs argv in the namespace and fails the test if it fails.
func (n *NetNS) MustRun(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := n.Run(argv...)
	if err != nil {
		t.Fatalf("in %s: %v: %v\n%s", n.Name, argv, err, out)
	}
	return out
}

// pids lists the processes in the namespace.
func (n *NetNS) pids() []int {
	out, _ := exec.Command("ip", "netns", "pids", n.Name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// remove kills what is left in the namespace (a stopped node leaves
// nothing, so that is an error) and deletes it and the veth pair.
func (n *NetNS) remove(t testing.TB) {
	if pids := n.pids(); len(pids) > 0 {
		t.Errorf("processes left in network namespace %s: %v", n.Name, pids)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(n.pids()) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Deleting the namespace destroys its end of the pair, and with it
	// the host's end; deleting the host end first is harmless.
	_ = exec.Command("ip", "link", "del", n.HostLink).Run()
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v\n%s", n.Name, err, out)
	}
}

// StartProcessIn runs the skiff binary with args inside ns until the
// test ends (stopped with SIGTERM as StartProcess's are: nsenter execs
// skiff, so the signal reaches it).
func StartProcessIn(t testing.TB, ns *NetNS, args ...string) *Process {
	t.Helper()
	return startProcess(t, ns.Command(append([]string{Binary(t)}, args...)...), args)
}

func mustRun(t testing.TB, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
