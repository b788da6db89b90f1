package hostport

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// The three pods of the upstream HostPort conformance spec share port
// 54323: on 127.0.0.1 over TCP, on the node IP over TCP and over UDP.
var conformancePods = []Mapping{
	{HostIP: "127.0.0.1", HostPort: 54323, Protocol: "tcp", PodIP: "10.88.0.2", ContainerPort: 8080},
	{HostIP: "192.168.1.5", HostPort: 54323, Protocol: "tcp", PodIP: "10.88.0.3", ContainerPort: 8080},
	{HostIP: "192.168.1.5", HostPort: 54323, Protocol: "udp", PodIP: "10.88.0.4", ContainerPort: 8081},
	{HostPort: 8000, PodIP: "10.88.0.5", ContainerPort: 80},
}

func TestRulesHonourHostIPAndProtocol(t *testing.T) {
	dnat, masq := rules(conformancePods)
	want := []string{
		"ip daddr 127.0.0.1 tcp dport 54323 dnat to 10.88.0.2:8080",
		"ip daddr 192.168.1.5 tcp dport 54323 dnat to 10.88.0.3:8080",
		"ip daddr 192.168.1.5 udp dport 54323 dnat to 10.88.0.4:8081",
		// Unset hostIP: every local address, after the specific ones.
		"fib daddr type local tcp dport 8000 dnat to 10.88.0.5:80",
	}
	if !slices.Equal(dnat, want) {
		t.Errorf("dnat rules:\n%s\nwant:\n%s", strings.Join(dnat, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range []string{
		"ip saddr 127.0.0.0/8 ct status dnat ip daddr 10.88.0.2 tcp dport 8080 masquerade",
		"ip saddr 10.88.0.4 ip daddr 10.88.0.4 udp dport 8081 masquerade",
	} {
		if !slices.Contains(masq, r) {
			t.Errorf("postrouting lacks %q:\n%s", r, strings.Join(masq, "\n"))
		}
	}
}

func TestRulesSkipUnusableMappings(t *testing.T) {
	dnat, masq := rules([]Mapping{
		{HostPort: 80, ContainerPort: 80},                                    // no pod address (host network)
		{HostIP: "::1", HostPort: 80, PodIP: "10.88.0.2", ContainerPort: 80}, // IPv6 host IP
		{HostPort: 0, PodIP: "10.88.0.2", ContainerPort: 80},
	})
	if len(dnat)+len(masq) != 0 {
		t.Errorf("rules for unusable mappings: %v %v", dnat, masq)
	}
}

func TestSyncWritesTableAndClearsNewUDPPorts(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, TableName("skbr0"))
	sysctl := t.TempDir()
	dir := filepath.Join(sysctl, "net", "ipv4", "conf", "skbr0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cleared [][]int32
	tab := &Table{bridge: "skbr0", nft: fake, sysctl: sysctl, clearUDP: func(p []int32) error { cleared = append(cleared, p); return nil }}
	ctx := context.Background()
	if err := tab.Sync(ctx, conformancePods); err != nil {
		t.Fatal(err)
	}
	dump := fake.Dump()
	for _, r := range []string{
		"add rule ip skiff-hostports-skbr0 hostports ip daddr 192.168.1.5 udp dport 54323 dnat to 10.88.0.4:8081",
		"add rule ip skiff-hostports-skbr0 output fib daddr type local jump hostports",
		"add rule ip skiff-hostports-skbr0 prerouting jump hostports",
	} {
		if !strings.Contains(dump, r) {
			t.Errorf("table lacks %q:\n%s", r, dump)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "route_localnet")); err != nil || string(b) != "1" {
		t.Errorf("route_localnet = %q, %v; want 1", b, err)
	}
	if !slices.EqualFunc(cleared, [][]int32{{54323}}, slices.Equal) {
		t.Errorf("cleared UDP ports %v, want [[54323]]", cleared)
	}
	// Unchanged UDP ports are not cleared again; removing all empties the chain.
	if err := tab.Sync(ctx, conformancePods); err != nil {
		t.Fatal(err)
	}
	if err := tab.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(cleared) != 1 {
		t.Errorf("cleared %v, want one clearing", cleared)
	}
	if dump := fake.Dump(); strings.Contains(dump, "dnat to") {
		t.Errorf("mappings left after sync of none:\n%s", dump)
	}
}

// TestRealTableTeardown writes a table with the kernel's nftables and
// deletes it; deleting it again (nothing there) is no error.
func TestRealTableTeardown(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and the nft command")
	}
	bridge := fmt.Sprintf("skhptest%d", os.Getpid()%100000)
	tab, err := New(bridge)
	if err != nil {
		t.Fatal(err)
	}
	tab.sysctl = t.TempDir()
	tab.clearUDP = func([]int32) error { return nil }
	if err := os.MkdirAll(filepath.Join(tab.sysctl, "net", "ipv4", "conf", bridge), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() { _ = Teardown(ctx, bridge) })
	// An address no one uses (TEST-NET-3) and no wildcard: the machine
	// is shared, its traffic must not be caught meanwhile.
	if err := tab.Sync(ctx, []Mapping{{HostIP: "203.0.113.77", HostPort: 54399, Protocol: "udp", PodIP: "10.88.0.2", ContainerPort: 8081}}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nft", "list", "table", "ip", TableName(bridge)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ip daddr 203.0.113.77 udp dport 54399 dnat to 10.88.0.2:8081") {
		t.Fatalf("nft list table: %v\n%s", err, out)
	}
	for range 2 {
		if err := Teardown(ctx, bridge); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec.Command("nft", "list", "table", "ip", TableName(bridge)).Run(); err == nil {
		t.Error("table left after Teardown")
	}
}
