package proxy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// table programs one nftables table: the first sync (and any sync after a
// failure) replaces the whole table in one transaction; later syncs send
// only the difference between the installed ruleset and the wanted one,
// also as one transaction, so packets always see a consistent state.
type table struct {
	nft knftables.Interface
	// serviceCIDR, if set, is dropped where no Service holds the address.
	serviceCIDR string
	// installed is what the table holds; nil when unknown.
	installed *ruleset
}

// baseChain is a chain attached to a netfilter hook.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
	rules    []string
}

// baseChains filter before DNAT (so that a packet to a service without
// endpoints is rejected while its destination is still the service's),
// DNAT in prerouting and output, and masquerade in postrouting.
var baseChains = []baseChain{
	{filterInputChain, knftables.FilterType, knftables.InputHook, knftables.DNATPriority + "-10",
		[]string{"ct state new jump " + nodePortEndpointsChk, "ct state new jump " + serviceEndpointsCheck}},
	{filterForwardChain, knftables.FilterType, knftables.ForwardHook, knftables.DNATPriority + "-10",
		[]string{"ct state new jump " + serviceEndpointsCheck, "ct state new jump " + clusterIPsCheckChain}},
	{filterOutputPostDNAT, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority,
		[]string{"ct state new jump " + clusterIPsCheckChain}},
	{filterOutputChain, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10",
		[]string{"ct state new jump " + serviceEndpointsCheck, "ct state new jump " + nodePortEndpointsChk}},
	{natPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, []string{"jump " + servicesChain}},
	{natOutput, knftables.NATType, knftables.OutputHook, knftables.DNATPriority, []string{"jump " + servicesChain}},
	{natPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, []string{
		// Hairpin: a connection DNATed back to the pod it came from
		// leaves with the node's address, or the pod would drop its own
		// address arriving from outside.
		"ct status dnat ip saddr . ip daddr @" + hairpinSet + " masquerade fully-random",
		"jump " + masqueradingChain,
	}},
}

// staticChains are the regular chains whose rules never change.
var staticChains = map[string][]string{
	servicesChain: {
		"ip daddr . meta l4proto . th dport vmap @" + serviceIPsMap,
		localNodePorts + " meta l4proto . th dport vmap @" + serviceNodePortsMap,
	},
	serviceEndpointsCheck: {"ip daddr . meta l4proto . th dport vmap @" + noEndpointServicesMap},
	nodePortEndpointsChk:  {localNodePorts + " meta l4proto . th dport vmap @" + noEndpointNodePortsMap},
	rejectChain:           {"reject"},
	clusterIPsCheckChain:  {"ip daddr @" + clusterIPsSet + " reject"},
	markMasqChain:         {"meta mark set meta mark or " + masqueradeMark},
	masqueradingChain: {
		"meta mark and " + masqueradeMark + " == 0 return",
		"meta mark set meta mark xor " + masqueradeMark,
		"masquerade fully-random",
	},
}

// verdictMaps are the table's maps and their types.
var verdictMaps = map[string]string{
	serviceIPsMap:          "ipv4_addr . inet_proto . inet_service : verdict",
	noEndpointServicesMap:  "ipv4_addr . inet_proto . inet_service : verdict",
	serviceNodePortsMap:    "inet_proto . inet_service : verdict",
	noEndpointNodePortsMap: "inet_proto . inet_service : verdict",
}

// apply makes the table hold want and returns the number of operations
// sent (0: nothing changed).
func (t *table) apply(ctx context.Context, want *ruleset) (int, error) {
	tx := t.nft.NewTransaction()
	if t.installed == nil {
		t.replaceAll(tx, want)
	} else {
		t.diff(tx, t.installed, want)
	}
	n := tx.NumOperations()
	if n == 0 {
		t.installed = want
		return 0, nil
	}
	if err := t.nft.Run(ctx, tx); err != nil {
		t.installed = nil
		return n, fmt.Errorf("nftables transaction of %d operations: %w", n, err)
	}
	t.installed = want
	return n, nil
}

// replaceAll writes the table from scratch: the old one (left by an
// earlier run) goes in the same transaction.
func (t *table) replaceAll(tx *knftables.Transaction, want *ruleset) {
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff service proxy")})
	for name, typ := range verdictMaps {
		tx.Add(&knftables.Map{Name: name, Type: typ})
	}
	for name := range staticChains {
		tx.Add(&knftables.Chain{Name: name})
	}
	tx.Add(&knftables.Set{Name: hairpinSet, Type: "ipv4_addr . ipv4_addr"})
	for ip := range want.hairpin {
		tx.Add(hairpinElement(ip))
	}
	tx.Add(&knftables.Set{Name: clusterIPsSet, Type: "ipv4_addr"})
	for ip := range want.clusterIPs {
		tx.Add(clusterIPElement(ip))
	}
	empty := newFragment(nil)
	var changes []change
	for _, id := range slices.Sorted(maps.Keys(want.fragments)) {
		changes = append(changes, change{empty, want.fragments[id]})
	}
	// The fragments' chains exist before the static rules refer to them.
	writeChanges(tx, changes, func() {
		for name, rules := range staticChains {
			addRules(tx, name, rules)
		}
		if t.serviceCIDR != "" {
			addRules(tx, clusterIPsCheckChain, []string{"ip daddr " + t.serviceCIDR + " drop"})
		}
	})
	for _, c := range baseChains {
		tx.Add(&knftables.Chain{Name: c.name, Type: knftables.PtrTo(c.typ), Hook: knftables.PtrTo(c.hook), Priority: knftables.PtrTo(c.priority)})
		addRules(tx, c.name, c.rules)
	}
}

// change is one fragment's move from have to want.
type change struct{ have, want *fragment }

// diff adds to tx what turns have into want, visiting only the fragments
// that are not the very same (unchanged fragments are shared).
func (t *table) diff(tx *knftables.Transaction, have, want *ruleset) {
	empty := newFragment(nil)
	var changes []change
	for _, id := range slices.Sorted(maps.Keys(want.fragments)) {
		w := want.fragments[id]
		h := have.fragments[id]
		if h == w {
			continue
		}
		if h == nil {
			h = empty
		}
		changes = append(changes, change{h, w})
	}
	for _, id := range slices.Sorted(maps.Keys(have.fragments)) {
		if _, ok := want.fragments[id]; !ok {
			changes = append(changes, change{have.fragments[id], empty})
		}
	}
	writeChanges(tx, changes, nil)
	for ip := range want.hairpin {
		if !have.hairpin[ip] {
			tx.Add(hairpinElement(ip))
		}
	}
	for ip := range have.hairpin {
		if !want.hairpin[ip] {
			tx.Delete(hairpinElement(ip))
		}
	}
	for ip := range want.clusterIPs {
		if !have.clusterIPs[ip] {
			tx.Add(clusterIPElement(ip))
		}
	}
	for ip := range have.clusterIPs {
		if !want.clusterIPs[ip] {
			tx.Delete(clusterIPElement(ip))
		}
	}
}

// clusterIPElement is ip's element of the cluster-ips set.
func clusterIPElement(ip string) *knftables.Element {
	return &knftables.Element{Set: clusterIPsSet, Key: []string{ip}}
}

// hairpinElement is ip's element of the hairpin set ("ip . ip").
func hairpinElement(ip string) *knftables.Element {
	return &knftables.Element{Set: hairpinSet, Key: []string{ip, ip}}
}

// writeChanges adds the changes to tx. Order matters within the
// transaction: new sets and chains exist before rules refer to them, and
// chains and sets go only after the rules and elements that use them.
// between, if set, runs once the new chains exist.
func writeChanges(tx *knftables.Transaction, changes []change, between func()) {
	for _, c := range changes {
		for name, timeout := range c.want.sets {
			if _, ok := c.have.sets[name]; !ok {
				tx.Add(affinitySet(name, timeout))
			}
		}
		for name := range c.want.chains {
			if _, ok := c.have.chains[name]; !ok {
				tx.Add(&knftables.Chain{Name: name})
			}
		}
	}
	if between != nil {
		between()
	}
	for _, c := range changes {
		for m, elems := range c.have.maps {
			for k, v := range elems {
				if nv, ok := c.want.maps[m][k]; !ok || nv != v {
					tx.Delete(element(m, k, ""))
				}
			}
		}
	}
	for _, c := range changes {
		for _, name := range slices.Sorted(maps.Keys(c.want.chains)) {
			rules := c.want.chains[name]
			old, ok := c.have.chains[name]
			if ok && slices.Equal(old, rules) {
				continue
			}
			if ok {
				tx.Flush(&knftables.Chain{Name: name})
			}
			addRules(tx, name, rules)
		}
	}
	for _, c := range changes {
		for m, elems := range c.want.maps {
			for k, v := range elems {
				if ov, ok := c.have.maps[m][k]; !ok || ov != v {
					tx.Add(element(m, k, v))
				}
			}
		}
	}
	var gone []string
	for _, c := range changes {
		for name := range c.have.chains {
			if _, ok := c.want.chains[name]; !ok {
				gone = append(gone, name)
			}
		}
	}
	// Chains that go may jump to each other: empty them all first.
	for _, name := range gone {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, name := range gone {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, c := range changes {
		for name := range c.have.sets {
			if _, ok := c.want.sets[name]; !ok {
				tx.Delete(&knftables.Set{Name: name})
			}
		}
	}
}

func addRules(tx *knftables.Transaction, chain string, rules []string) {
	for _, r := range rules {
		tx.Add(&knftables.Rule{Chain: chain, Rule: r})
	}
}

func affinitySet(name string, timeout time.Duration) *knftables.Set {
	return &knftables.Set{Name: name, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: &timeout}
}

// element is a verdict map element; key is "a . b . c".
func element(m, key, verdict string) *knftables.Element {
	e := &knftables.Element{Map: m, Key: strings.Split(key, " . ")}
	if verdict != "" {
		e.Value = []string{verdict}
	}
	return e
}
