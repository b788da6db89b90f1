package allocator

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestIPRangePicksEveryAddressOnceThenIsFull(t *testing.T) {
	r, err := NewIPRange("10.0.0.0/29", "/r/", 1)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	exists := func(key string) (bool, error) { return used[key], nil }
	for i := 0; i < 6; i++ { // .1 to .6; .0 is the network, .7 broadcast
		ip, err := r.Pick(context.Background(), exists)
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		if !r.Contains(ip) || used[r.Key(ip.String())] {
			t.Fatalf("pick %d: %s outside the range or reused", i, ip)
		}
		used[r.Key(ip.String())] = true
	}
	if _, err := r.Pick(context.Background(), exists); !errors.Is(err, ErrFull) {
		t.Fatalf("full range: %v", err)
	}
	for _, ip := range []string{"10.0.0.0", "10.0.0.7", "10.0.1.1"} {
		if r.Contains(net.ParseIP(ip)) {
			t.Errorf("%s should not be allocatable", ip)
		}
	}
}

func TestIPRangePrefersDynamicPart(t *testing.T) {
	r, _ := NewIPRange("10.43.0.0/16", "/r/", 7)
	for i := 0; i < 100; i++ {
		ip, err := r.Pick(context.Background(), func(string) (bool, error) { return false, nil })
		if err != nil {
			t.Fatal(err)
		}
		if off, _ := r.offset(ip); off <= 256 {
			t.Fatalf("random pick %s fell in the static part", ip)
		}
	}
}

func TestPortRangeCoversWholeRange(t *testing.T) {
	r := NewPortRange(30000, 4, "/p/", 3)
	taken := map[int]bool{}
	for i := 0; i < 4; i++ {
		p, err := r.Pick(context.Background(), func(string) (bool, error) { return false, nil }, taken)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Contains(p) || taken[p] {
			t.Fatalf("port %d", p)
		}
		taken[p] = true
	}
	if _, err := r.Pick(context.Background(), func(string) (bool, error) { return false, nil }, taken); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	if r.String() != "30000-30003" {
		t.Fatal(r.String())
	}
}

func TestIPRangeArithmetic(t *testing.T) {
	cases := []struct {
		cidr           string
		first, last    string
		outside        []string
		wantNewRangeOK bool
	}{
		{"10.43.0.0/16", "10.43.0.1", "10.43.255.254", []string{"10.43.0.0", "10.43.255.255", "10.44.0.1"}, true},
		{"fd00:10:96::/112", "fd00:10:96::1", "fd00:10:96::ffff", []string{"fd00:10:96::", "fd00:10:97::1", "10.0.0.1"}, true},
		{"10.0.0.1/32", "", "", nil, false},
	}
	for _, tc := range cases {
		r, err := NewIPRange(tc.cidr, "/r/", 1)
		if (err == nil) != tc.wantNewRangeOK {
			t.Fatalf("%s: %v", tc.cidr, err)
		}
		if err != nil {
			continue
		}
		if got := r.At(1).String(); got != tc.first {
			t.Errorf("%s: first %s, want %s", tc.cidr, got, tc.first)
		}
		if got := r.At(r.size).String(); got != tc.last {
			t.Errorf("%s: last %s, want %s", tc.cidr, got, tc.last)
		}
		for _, ip := range []string{tc.first, tc.last} {
			if !r.Contains(net.ParseIP(ip)) {
				t.Errorf("%s: %s should be allocatable", tc.cidr, ip)
			}
		}
		for _, ip := range tc.outside {
			if r.Contains(net.ParseIP(ip)) {
				t.Errorf("%s: %s should not be allocatable", tc.cidr, ip)
			}
		}
	}
}

func TestKeysAreCanonical(t *testing.T) {
	r, _ := NewIPRange("fd00::/112", "/r/", 1)
	if a, b := r.Key("FD00:0:0:0:0:0:0:5"), r.Key("fd00::5"); a != b || a != "/r/fd00::5" {
		t.Fatalf("keys %q %q", a, b)
	}
	p := NewPortRange(30000, 2768, "/p/", 1)
	if p.Key(30080) != "/p/30080" || !p.Contains(32767) || p.Contains(32768) || p.Contains(29999) {
		t.Fatal("port range bounds")
	}
}
