package egress

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/knftables"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newFake(t *testing.T, f informers.SharedInformerFactory) (*Masquerade, *knftables.Fake) {
	t.Helper()
	nft := knftables.NewFake(knftables.IPv4Family, TableName("skf0"))
	m, err := New(Config{NodeName: "a", Bridge: "skf0", ClusterCIDR: "10.42.0.0/16", NFT: nft, Log: quiet}, f)
	if err != nil {
		t.Fatal(err)
	}
	return m, nft
}

// dump is the fake's tables as nft input.
func dump(nft *knftables.Fake) string { return strings.TrimSpace(nft.Dump()) }

func TestSyncWritesTheTableAndIsIdempotent(t *testing.T) {
	m, nft := newFake(t, nil)
	ctx := context.Background()
	if err := m.Sync(ctx, "10.42.3.0/24"); err != nil {
		t.Fatal(err)
	}
	want := `add table ip skiff-egress-skf0 { comment "skiff: masquerade pod traffic leaving the cluster" ; }
add chain ip skiff-egress-skf0 postrouting { type nat hook postrouting priority 100 ; }
add rule ip skiff-egress-skf0 postrouting ip saddr 10.42.3.0/24 ip daddr != 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random comment "pod traffic leaving the cluster"`
	if d := cmp.Diff(want, dump(nft)); d != "" {
		t.Fatalf("table (-want +got):\n%s", d)
	}
	// Again: the same table, not a second rule.
	if err := m.Sync(ctx, "10.42.3.0/24"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, dump(nft)); d != "" {
		t.Fatalf("after a second sync (-want +got):\n%s", d)
	}
	// Whatever else the table held goes; a new range replaces the old.
	tx := nft.NewTransaction()
	tx.Add(&knftables.Chain{Name: "stray"})
	tx.Add(&knftables.Rule{Chain: chain, Rule: "ip saddr 10.9.9.0/24 masquerade"})
	if err := nft.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx, "10.42.4.0/24"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(strings.ReplaceAll(want, "10.42.3.0/24", "10.42.4.0/24"), dump(nft)); d != "" {
		t.Fatalf("after a new range (-want +got):\n%s", d)
	}
	// One transaction, so no packet sees a half-written table.
	if nft.LastTransaction.NumOperations() != 5 {
		t.Errorf("last transaction:\n%s", nft.LastTransaction)
	}

	if err := teardown(ctx, nft, "skf0"); err != nil {
		t.Fatal(err)
	}
	if nft.Table != nil {
		t.Errorf("table after teardown:\n%s", nft.Dump())
	}
	if err := teardown(ctx, nft, "skf0"); err != nil {
		t.Errorf("teardown of a missing table: %v", err)
	}
}

func TestSyncRejectsRangesOutsideTheCluster(t *testing.T) {
	m, nft := newFake(t, nil)
	for _, cidr := range []string{"10.43.0.0/24", "10.0.0.0/8", "fd00::/64", "nonsense"} {
		if err := m.Sync(context.Background(), cidr); err == nil {
			t.Errorf("pod CIDR %s accepted", cidr)
		}
	}
	if nft.Table != nil {
		t.Errorf("a rejected range wrote the table:\n%s", nft.Dump())
	}
}

func TestConfigValidation(t *testing.T) {
	nft := knftables.NewFake(knftables.IPv4Family, "t")
	for _, cfg := range []Config{
		{ClusterCIDR: "10.42.0.0/16", NFT: nft},
		{Bridge: "b", NFT: nft},
		{Bridge: "b", ClusterCIDR: "fd00::/48", NFT: nft},
		{Bridge: "b", ClusterCIDR: "10.42.0.0/16", Resync: -time.Second, NFT: nft},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	if _, err := New(Config{Bridge: "b", ClusterCIDR: "10.42.0.0/16", NFT: nft}, f); err == nil {
		t.Error("Run without a node name accepted")
	}
	if m, err := New(Config{Bridge: "b", ClusterCIDR: "10.42.0.0/16", NFT: nft}, nil); err != nil {
		t.Error(err)
	} else if err := m.Run(context.Background()); err == nil {
		t.Error("Run without an informer started")
	}
}

// TestRunFollowsTheNodesPodCIDR drives Run from a fake API: the table
// once the Node has a range (another Node's range is not ours), then the
// new range when it changes.
func TestRunFollowsTheNodesPodCIDR(t *testing.T) {
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.NodeSpec{PodCIDR: "10.42.9.0/24"}})
	f := informers.NewSharedInformerFactory(client, 0)
	m, nft := newFake(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		f.Shutdown()
	})
	holds := func(want string) {
		t.Helper()
		var got string
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			got = nft.Dump() // takes the fake's lock
			return strings.Contains(got, want), nil
		})
		if err != nil {
			t.Fatalf("table does not hold %q:\n%s", want, got)
		}
	}
	nodes := client.CoreV1().Nodes()
	_, err := nodes.Update(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: corev1.NodeSpec{PodCIDR: "10.42.1.0/24"}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holds("ip saddr 10.42.1.0/24 ")
	_, err = nodes.Update(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: corev1.NodeSpec{PodCIDR: "10.42.2.0/24"}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holds("ip saddr 10.42.2.0/24 ")
}
