// Package allocator picks free service ClusterIPs and NodePorts.
//
// It only chooses: every allocation is a reservation key (one per IP or
// port) that the storage layer creates in the same etcd transaction as the
// Service holding it and removes with it, so an allocation can never leak
// or be handed out twice; a choice that loses a race fails that
// transaction and is retried with another pick.
package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Exists reports whether a reservation key exists.
type Exists func(key string) (bool, error)

// ErrFull means no free value is left in the range.
var ErrFull = errors.New("range is full")

// IPRange allocates addresses from a CIDR.
type IPRange struct {
	net  *net.IPNet
	base *big.Int
	// size counts usable addresses: the network address and, for IPv4,
	// the broadcast address are excluded.
	size int64
	// dynamicStart is the first offset random allocation uses; offsets
	// below it are left for addresses users ask for, as upstream does.
	dynamicStart int64
	// Prefix is the reservation key prefix, ending in "/".
	Prefix string
	mu     sync.Mutex
	rand   *rand.Rand
}

// NewIPRange returns the allocator of cidr with reservations under prefix.
func NewIPRange(cidr, prefix string, seed uint64) (*IPRange, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ones, bits := n.Mask.Size()
	hostBits := bits - ones
	if hostBits > 62 {
		hostBits = 62
	}
	size := int64(1)<<hostBits - 1
	if bits == 32 {
		size-- // broadcast
	}
	if size < 1 {
		return nil, fmt.Errorf("service CIDR %s has no usable addresses", cidr)
	}
	static := min(max(16, size/16), 256)
	if static >= size {
		static = 0
	}
	return &IPRange{net: n, base: new(big.Int).SetBytes(n.IP), size: size, dynamicStart: static, Prefix: prefix, rand: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, nil
}

// CIDR returns the range's network.
func (r *IPRange) CIDR() *net.IPNet { return r.net }

// Contains reports whether ip is an allocatable address of the range.
func (r *IPRange) Contains(ip net.IP) bool {
	off, ok := r.offset(ip)
	return ok && off >= 1 && off <= r.size
}

func (r *IPRange) offset(ip net.IP) (int64, bool) {
	if !r.net.Contains(ip) {
		return 0, false
	}
	if v4 := ip.To4(); v4 != nil && len(r.net.IP) == net.IPv4len {
		ip = v4
	}
	return new(big.Int).Sub(new(big.Int).SetBytes(ip), r.base).Int64(), true
}

// At returns the address at offset (1 is the first usable address).
func (r *IPRange) At(offset int64) net.IP {
	v := new(big.Int).Add(r.base, big.NewInt(offset)).Bytes()
	ip := make(net.IP, len(r.net.IP))
	copy(ip[len(ip)-len(v):], v)
	return ip
}

// Key is the reservation key of ip, in canonical form so that one address
// has one key however it is written.
func (r *IPRange) Key(ip string) string {
	if parsed := net.ParseIP(ip); parsed != nil {
		ip = parsed.String()
	}
	return r.Prefix + ip
}

// Pick chooses a free address, preferring the dynamic part of the range.
func (r *IPRange) Pick(ctx context.Context, exists Exists) (net.IP, error) {
	// Index i is offset i+1: the network address is never handed out.
	idx, err := pick(ctx, r.size, r.dynamicStart, r.randInt, func(i int64) (bool, error) { return exists(r.Key(r.At(i + 1).String())) })
	if err != nil {
		return nil, fmt.Errorf("allocate IP in %s: %w", r.net, err)
	}
	return r.At(idx + 1), nil
}

func (r *IPRange) randInt(n int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rand.Int64N(n)
}

// PortRange allocates ports from an inclusive range.
type PortRange struct {
	Base, Size int
	Prefix     string
	mu         sync.Mutex
	rand       *rand.Rand
}

// NewPortRange returns the allocator of ports base..base+size-1.
func NewPortRange(base, size int, prefix string, seed uint64) *PortRange {
	return &PortRange{Base: base, Size: size, Prefix: prefix, rand: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))}
}

// Contains reports whether port is in the range.
func (r *PortRange) Contains(port int) bool { return port >= r.Base && port < r.Base+r.Size }

// Key is the reservation key of port.
func (r *PortRange) Key(port int) string { return r.Prefix + strconv.Itoa(port) }

// String renders the range as upstream's messages do ("30000-32767").
func (r *PortRange) String() string { return fmt.Sprintf("%d-%d", r.Base, r.Base+r.Size-1) }

// Pick chooses a free port not in taken (ports this request already holds).
func (r *PortRange) Pick(ctx context.Context, exists Exists, taken map[int]bool) (int, error) {
	static := int64(min(max(16, r.Size/32), 128))
	idx, err := pick(ctx, int64(r.Size), static, r.randInt, func(i int64) (bool, error) {
		port := r.Base + int(i)
		if taken[port] {
			return true, nil
		}
		return exists(r.Key(port))
	})
	if err != nil {
		return 0, fmt.Errorf("allocate node port in %s: %w", r, err)
	}
	return r.Base + int(idx), nil
}

func (r *PortRange) randInt(n int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rand.Int64N(n)
}

// pick finds a free index in [0, n): random probes in the dynamic part
// [dynamic, n), then a scan of everything from a random start.
func pick(ctx context.Context, n, dynamic int64, randInt func(int64) int64, taken func(int64) (bool, error)) (int64, error) {
	if dynamic >= n {
		dynamic = 0
	}
	for i := 0; i < 32; i++ {
		idx := dynamic + randInt(n-dynamic)
		used, err := taken(idx)
		if err != nil {
			return 0, err
		}
		if !used {
			return idx, nil
		}
	}
	start := randInt(n)
	for i := int64(0); i < n; i++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		idx := (start + i) % n
		used, err := taken(idx)
		if err != nil {
			return 0, err
		}
		if !used {
			return idx, nil
		}
	}
	return 0, ErrFull
}
