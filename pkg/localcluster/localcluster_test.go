package localcluster

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func cidr(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPickSubnet(t *testing.T) {
	for _, tc := range []struct {
		name string
		used []string
		want string
	}{
		{"nothing used", nil, "10.200.0.0/24"},
		{"first taken", []string{"10.200.0.0/24"}, "10.200.1.0/24"},
		{"a host inside", []string{"10.200.0.7/32", "10.200.1.0/25"}, "10.200.2.0/24"},
		{"a wider route", []string{"10.200.0.0/23"}, "10.200.2.0/24"},
		{"unrelated", []string{"10.42.0.0/16", "192.168.0.0/16"}, "10.200.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var used []*net.IPNet
			for _, u := range tc.used {
				used = append(used, cidr(t, u))
			}
			got, err := PickSubnet(used)
			if err != nil || got.String() != tc.want {
				t.Fatalf("PickSubnet(%v) = %v, %v; want %s", tc.used, got, err, tc.want)
			}
		})
	}
	if _, err := PickSubnet([]*net.IPNet{cidr(t, "10.0.0.0/8")}); err == nil {
		t.Fatal("PickSubnet with 10/8 used: no error")
	}
}

func TestParseRoutes(t *testing.T) {
	out := `default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
10.200.3.0/24 dev skcbr1 proto kernel scope link src 10.200.3.1
local 10.200.3.1 dev skcbr1 table local proto kernel scope host src 10.200.3.1
broadcast 10.200.3.255 dev skcbr1 table local proto kernel scope link src 10.200.3.1
`
	var got []string
	for _, n := range parseRoutes(out) {
		got = append(got, n.String())
	}
	want := []string{"192.0.2.0/24", "10.200.3.0/24", "10.200.3.1/32", "10.200.3.255/32"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseRoutes = %v, want %v", got, want)
	}
}

func TestNames(t *testing.T) {
	long := "a-very-long-cluster-name-of-forty-chars0"
	if err := ValidateName(long); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{BridgeName(long), HostLinkName(long, NodeName(long, RoleAgent, 99))} {
		if len(n) > 15 {
			t.Errorf("interface name %q longer than 15", n)
		}
	}
	if HostLinkName("a", "a-agent-0") == HostLinkName("a", "a-agent-1") || BridgeName("a") == BridgeName("b") {
		t.Error("names collide")
	}
	if got := NetNSName(NodeName("dev", RoleServer, 0)); got != "skc-dev-server-0" {
		t.Errorf("NetNSName = %q", got)
	}
	for _, bad := range []string{"", "Dev", "-a", "a-", "a_b", long + "x"} {
		if ValidateName(bad) == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
}

func TestNthIP(t *testing.T) {
	s := cidr(t, "10.200.7.0/24")
	if got := NthIP(s, 1).String(); got != "10.200.7.1" {
		t.Errorf("NthIP 1 = %s", got)
	}
	if got := NthIP(cidr(t, "10.0.0.0/16"), 300).String(); got != "10.0.1.44" {
		t.Errorf("NthIP 300 = %s", got)
	}
}

func TestStateAndIndex(t *testing.T) {
	root := t.TempDir()
	x := Index{Root: root}
	// One in the default place, one elsewhere recorded in the index.
	a := &Cluster{Name: "a", Dir: x.DefaultDir("a"), APIPort: 1234, Subnet: "10.200.0.0/24",
		Nodes: []*Node{{Name: "a-server-0", Role: RoleServer}, {Name: "a-agent-0", Role: RoleAgent}, {Name: "a-agent-1", Role: RoleAgent}}}
	b := &Cluster{Name: "b", Dir: filepath.Join(t.TempDir(), "elsewhere")}
	for _, c := range []*Cluster{a, b} {
		if err := mkdir(c.Dir); err != nil {
			t.Fatal(err)
		}
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Add("b", b.Dir); err != nil {
		t.Fatal(err)
	}
	list, err := x.List()
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("List = %v, %v", list, err)
	}
	got, err := x.Load("a")
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("Load(a) = %+v, %v; want %+v", got, err, a)
	}
	if got.Count(RoleAgent) != 2 || got.Server().Name != "a-server-0" || got.Node("agent-1") != got.Nodes[2] || got.Node("nope") != nil {
		t.Error("node lookups")
	}
	if x.Dir("b") != b.Dir || x.Dir("c") != "" {
		t.Errorf("Dir(b) = %q, Dir(c) = %q", x.Dir("b"), x.Dir("c"))
	}
	if err := x.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Load("b"); err == nil {
		t.Error("Load(b) after Remove: no error")
	}
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o700) }
