package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
)

// ErrFull is returned when every range of the cluster CIDR is taken.
var ErrFull = errors.New("no pod CIDR available")

// allocator hands out the subnets of one mask size within a cluster
// CIDR: the next free one after the last handed out, as upstream's
// CIDR set does, so a freed range is not reused at once.
type allocator struct {
	base     *big.Int
	family   int // bits in an address: 32 or 128
	mask     int // prefix length of each range
	count    int
	mu       sync.Mutex
	used     map[int]bool
	next     int
	clusterN *net.IPNet
}

func newAllocator(cluster *net.IPNet, mask int) (*allocator, error) {
	ones, bits := cluster.Mask.Size()
	if mask < ones || mask > bits {
		return nil, fmt.Errorf("node CIDR mask /%d does not fit in cluster CIDR %s", mask, cluster)
	}
	if mask-ones > 16 {
		return nil, fmt.Errorf("node CIDR mask /%d makes more than 65536 ranges of %s", mask, cluster)
	}
	ip := cluster.IP.To16()
	if bits == 32 {
		ip = cluster.IP.To4()
	}
	return &allocator{
		base: new(big.Int).SetBytes(ip), family: bits, mask: mask, count: 1 << (mask - ones),
		used: map[int]bool{}, clusterN: cluster,
	}, nil
}

func (a *allocator) cidr(i int) *net.IPNet {
	off := new(big.Int).Lsh(big.NewInt(int64(i)), uint(a.family-a.mask))
	n := new(big.Int).Add(a.base, off).Bytes()
	ip := make(net.IP, a.family/8)
	copy(ip[len(ip)-len(n):], n)
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(a.mask, a.family)}
}

// index returns the range number of cidr, or false when cidr is not one
// of this allocator's ranges.
func (a *allocator) index(cidr string) (int, bool) {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil || !a.clusterN.Contains(ip) {
		return 0, false
	}
	if ones, _ := n.Mask.Size(); ones != a.mask {
		return 0, false
	}
	b := n.IP.To16()
	if a.family == 32 {
		b = n.IP.To4()
	}
	off := new(big.Int).Sub(new(big.Int).SetBytes(b), a.base)
	i := int(new(big.Int).Rsh(off, uint(a.family-a.mask)).Int64())
	return i, i >= 0 && i < a.count
}

// occupy marks cidr as taken (a node already has it).
func (a *allocator) occupy(cidr string) bool {
	i, ok := a.index(cidr)
	if !ok {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.used[i] = true
	return true
}

// release frees cidr.
func (a *allocator) release(cidr string) {
	if i, ok := a.index(cidr); ok {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.used, i)
	}
}

// allocate takes the next free range.
func (a *allocator) allocate() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.count {
		i := (a.next + k) % a.count
		if !a.used[i] {
			a.used[i] = true
			a.next = (i + 1) % a.count
			return a.cidr(i).String(), nil
		}
	}
	return "", ErrFull
}
