package hostgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// node is a Node named name with podCIDR cidr ("" for none) and
// InternalIP ip ("" for none).
func node(name, cidr, ip string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if cidr != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidr, []string{cidr}
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}}
	if ip != "" {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	return n
}

func TestDesired(t *testing.T) {
	local := map[netip.Addr]bool{netip.MustParseAddr("192.0.2.1"): true, netip.MustParseAddr("127.0.0.1"): true}
	v6 := node("v6", "fd00:42::/64", "fd00::5")
	legacy := node("legacy", "", "192.0.2.9")
	legacy.Spec.PodCIDR = "10.42.9.0/24" // podCIDR without podCIDRs
	unmasked := node("unmasked", "10.42.7.1/24", "192.0.2.7")
	for _, tc := range []struct {
		name        string
		nodes       []*corev1.Node
		want        map[string]string
		wantSkipped map[string]string
	}{{
		name:        "other nodes are routed, this one is not",
		nodes:       []*corev1.Node{node("self", "10.42.0.0/24", "192.0.2.1"), node("b", "10.42.1.0/24", "192.0.2.2"), node("c", "10.42.2.0/24", "192.0.2.3")},
		want:        map[string]string{"10.42.1.0/24": "192.0.2.2", "10.42.2.0/24": "192.0.2.3"},
		wantSkipped: map[string]string{"self": skipSelf},
	}, {
		name: "nodes without range or address, and nodes on this host, are skipped",
		nodes: []*corev1.Node{
			node("self", "10.42.0.0/24", "192.0.2.1"), node("norange", "", "192.0.2.2"), node("noip", "10.42.2.0/24", ""),
			node("samehost", "10.42.3.0/24", "192.0.2.1"), node("loopback", "10.42.4.0/24", "127.0.0.1"), v6,
		},
		want: map[string]string{},
		wantSkipped: map[string]string{
			"self": skipSelf, "norange": skipNoCIDR, "noip": skipNoIP, "samehost": skipLocalIP, "loopback": skipLocalIP, "v6": skipNoCIDR,
		},
	}, {
		name:        "a node holding this node's range is skipped",
		nodes:       []*corev1.Node{node("self", "10.42.0.0/24", "192.0.2.1"), node("stale", "10.42.0.0/24", "192.0.2.5")},
		want:        map[string]string{},
		wantSkipped: map[string]string{"self": skipSelf, "stale": skipOwnCIDR},
	}, {
		name:        "two nodes claiming one range: the first by name wins",
		nodes:       []*corev1.Node{node("z", "10.42.5.0/24", "192.0.2.26"), node("a", "10.42.5.0/24", "192.0.2.5")},
		want:        map[string]string{"10.42.5.0/24": "192.0.2.5"},
		wantSkipped: map[string]string{"z": skipConflict},
	}, {
		name:        "spec.podCIDR alone, and unmasked ranges, are understood",
		nodes:       []*corev1.Node{legacy, unmasked},
		want:        map[string]string{"10.42.9.0/24": "192.0.2.9", "10.42.7.0/24": "192.0.2.7"},
		wantSkipped: map[string]string{},
	}, {
		name:        "this node not registered yet: everyone else is routed",
		nodes:       []*corev1.Node{node("b", "10.42.1.0/24", "192.0.2.2")},
		want:        map[string]string{"10.42.1.0/24": "192.0.2.2"},
		wantSkipped: map[string]string{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			want, skipped := desired(tc.nodes, "self", local)
			got := map[string]string{}
			for p, a := range want {
				got[p.String()] = a.String()
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("routes (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantSkipped, skipped); d != "" {
				t.Errorf("skipped (-want +got):\n%s", d)
			}
		})
	}
}

func TestRoutingIgnoresHeartbeats(t *testing.T) {
	a := node("b", "10.42.1.0/24", "192.0.2.2")
	b := a.DeepCopy()
	b.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	if routing(a) != routing(b) {
		t.Error("a heartbeat changes the routing key")
	}
	b.Status.Addresses[1].Address = "192.0.2.3"
	if routing(a) == routing(b) {
		t.Error("a new InternalIP does not change the routing key")
	}
}

// fixture is a Routes over a fake table whose Node cache the test fills.
type fixture struct {
	r       *Routes
	nl      *fakeNetlink
	indexer cache.Indexer
	dir     string
}

func newFixture(t *testing.T, dir string, nodes ...*corev1.Node) *fixture {
	t.Helper()
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	nl := &fakeNetlink{addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	r, err := New(Config{NodeName: "self", StateDir: dir, Netlink: nl, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, f)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{r: r, nl: nl, indexer: f.Core().V1().Nodes().Informer().GetIndexer(), dir: dir}
	for _, n := range nodes {
		if err := fx.indexer.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// sync runs one pass and returns the actions it took.
func (fx *fixture) sync(t *testing.T) []string {
	t.Helper()
	if err := fx.r.sync(context.Background(), key); err != nil {
		t.Fatalf("sync: %v", err)
	}
	return fx.nl.takeActions()
}

func (fx *fixture) state(t *testing.T) state {
	t.Helper()
	st, _, err := loadState(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestSyncAddsReplacesAndDeletesOnlyItsOwnRoutes(t *testing.T) {
	dir := t.TempDir()
	fx := newFixture(t, dir, node("self", "10.42.0.0/24", "192.0.2.1"), node("b", "10.42.1.0/24", "192.0.2.2"), node("c", "10.42.2.0/24", "192.0.2.3"))
	m := metricFor(dir)
	// Routes that are not this owner's: another hostgw's (same protocol,
	// other metric, even to the same destination), an administrator's,
	// and one with our protocol and metric to a destination we never
	// installed.
	fx.nl.add("10.42.1.0/24", "192.0.2.2", Protocol, m+1)
	fx.nl.add("10.42.2.0/24", "192.0.2.99", 4, 0)
	fx.nl.add("10.42.8.0/24", "192.0.2.8", Protocol, m)
	foreign := len(fx.nl.routes)

	got := fx.sync(t)
	want := []string{
		"replace 10.42.1.0/24 via 192.0.2.2 metric " + itoa(m) + " proto 83",
		"replace 10.42.2.0/24 via 192.0.2.3 metric " + itoa(m) + " proto 83",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("first pass (-want +got):\n%s", d)
	}
	if d := cmp.Diff(prefixes("10.42.1.0/24", "10.42.2.0/24"), fx.state(t).Destinations, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("state (-want +got):\n%s", d)
	}
	if got := fx.sync(t); len(got) != 0 {
		t.Errorf("a pass with nothing to do acted: %v", got)
	}

	// b moves to a new address; c goes away.
	if err := fx.indexer.Update(node("b", "10.42.1.0/24", "192.0.2.12")); err != nil {
		t.Fatal(err)
	}
	if err := fx.indexer.Delete(node("c", "", "")); err != nil {
		t.Fatal(err)
	}
	got = fx.sync(t)
	want = []string{
		"replace 10.42.1.0/24 via 192.0.2.12 metric " + itoa(m) + " proto 83",
		"delete 10.42.2.0/24 metric " + itoa(m),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("after changes (-want +got):\n%s", d)
	}
	if st := fx.state(t); len(st.Destinations) != 1 || st.Destinations[0].String() != "10.42.1.0/24" {
		t.Errorf("state lists %v, want only 10.42.1.0/24", st.Destinations)
	}

	// A route of ours deleted behind our back comes back on the next pass.
	if err := fx.nl.RouteDel(fx.r.route(netip.MustParsePrefix("10.42.1.0/24"), netip.MustParseAddr("192.0.2.12"))); err != nil {
		t.Fatal(err)
	}
	fx.nl.takeActions()
	if got := fx.sync(t); len(got) != 1 {
		t.Errorf("lost route not restored: %v", got)
	}

	// Teardown removes exactly what this owner installed.
	if err := teardown(fx.nl, dir, fx.state(t)); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"delete 10.42.1.0/24 metric " + itoa(m)}, fx.nl.takeActions()); d != "" {
		t.Errorf("teardown (-want +got):\n%s", d)
	}
	if len(fx.nl.routes) != foreign {
		t.Errorf("teardown left %d routes, want the %d foreign ones: %v", len(fx.nl.routes), foreign, fx.nl.routes)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after teardown: %v", err)
	}
}

func TestRestartDeletesRoutesOfNodesGoneMeanwhile(t *testing.T) {
	dir := t.TempDir()
	fx := newFixture(t, dir, node("b", "10.42.1.0/24", "192.0.2.2"), node("c", "10.42.2.0/24", "192.0.2.3"))
	fx.sync(t)
	// The agent stops; c is deleted; a new agent starts on the same
	// state directory and the same kernel table.
	again := newFixture(t, dir, node("b", "10.42.1.0/24", "192.0.2.2"))
	again.nl = fx.nl
	again.r.nl = fx.nl
	got := again.sync(t)
	if d := cmp.Diff([]string{"delete 10.42.2.0/24 metric " + itoa(metricFor(dir))}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestFailedRouteStaysOwnedAndIsRetried(t *testing.T) {
	dir := t.TempDir()
	fx := newFixture(t, dir, node("b", "10.42.1.0/24", "198.51.100.2"))
	fx.nl.failReplace = map[string]error{"10.42.1.0/24": errors.New("network is unreachable")}
	if err := fx.r.sync(context.Background(), key); err == nil {
		t.Fatal("sync succeeded with a failing route")
	}
	// Written ahead: the destination is owned though the route is not in.
	if st := fx.state(t); len(st.Destinations) != 1 {
		t.Errorf("state lists %v, want the failed destination", st.Destinations)
	}
	fx.nl.failReplace = nil
	if got := fx.sync(t); len(got) != 1 {
		t.Errorf("retry: %v", got)
	}
}

func TestTeardownWithoutStateIsANoOp(t *testing.T) {
	if err := Teardown(filepath.Join(t.TempDir(), "never")); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	if _, err := New(Config{}, f); err == nil {
		t.Error("empty config accepted")
	}
	if _, err := New(Config{NodeName: "a", StateDir: "d", Resync: -1}, f); err == nil {
		t.Error("negative resync accepted")
	}
}

func TestMetricIsPerOwner(t *testing.T) {
	a, b := metricFor("/var/lib/skiff/a/agent/hostgw"), metricFor("/var/lib/skiff/b/agent/hostgw")
	if a == b {
		t.Errorf("two state dirs share metric %d", a)
	}
	for _, m := range []int{a, b} {
		if m < metricBase || m >= metricBase+metricSpan {
			t.Errorf("metric %d out of range", m)
		}
	}
}

func itoa(i int) string { return fmt.Sprint(i) }
