package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Names of the table's fixed chains, sets and maps (upstream kube-proxy's
// nftables mode uses the same layout and names).
const (
	filterInputChain   = "filter-input"
	filterForwardChain = "filter-forward"
	filterOutputChain  = "filter-output"
	natPrerouting      = "nat-prerouting"
	natOutput          = "nat-output"
	natPostrouting     = "nat-postrouting"

	servicesChain         = "services"
	serviceEndpointsCheck = "service-endpoints-check"
	nodePortEndpointsChk  = "nodeport-endpoints-check"
	rejectChain           = "reject-chain"
	masqueradingChain     = "masquerading"
	markMasqChain         = "mark-for-masquerade"
	clusterDNSChain       = "cluster-dns"
	clusterIPsCheckChain  = "cluster-ips-check"
	// filterOutputPostDNAT sees locally sent packets after DNAT, as
	// upstream's filter-output (ours runs before DNAT).
	filterOutputPostDNAT = "filter-output-post-dnat"

	hairpinSet             = "hairpin"
	clusterIPsSet          = "cluster-ips"
	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"

	// masqueradeMark is the packet mark bit that asks for masquerading in
	// postrouting (kube-proxy's 0x4000).
	masqueradeMark = "0x4000"

	// defaultAffinityTimeout is sessionAffinityConfig.clientIP's default.
	defaultAffinityTimeout = 10800 * time.Second
)

// localNodePorts matches packets addressed to this node other than on
// loopback (DNAT from 127.0.0.1 to a pod would need route_localnet).
const localNodePorts = "fib daddr type local ip daddr != 127.0.0.0/8"

// fragment is the part of the table that follows from one Service (or
// from the cluster DNS settings): its chains, affinity sets and verdict
// map elements. Object names derive from the Service, so fragments never
// share a chain or set.
type fragment struct {
	// inputs are the objects the fragment was computed from (the Service
	// and its EndpointSlices, as the informer cache holds them): cache
	// objects are replaced, never changed, on update, so equal inputs
	// mean an equal fragment.
	inputs []any
	// chains are regular chains and their rules, in order.
	chains map[string][]string
	// sets are the session-affinity sets, by name, with their timeout.
	sets map[string]time.Duration
	// maps are the verdict maps' elements: map name -> key -> verdict.
	maps map[string]map[string]string
	// endpoints are the endpoints ("ip:port") traffic is sent to.
	endpoints map[string]bool
	// udp are the UDP service ports, by service port id (for conntrack
	// clean-up: see staleFlows).
	udp map[string]udpPort
}

// udpPort is what conntrack clean-up needs of a UDP service port.
type udpPort struct {
	// addrs are the addresses it is reached at: cluster, external and
	// load-balancer IPs.
	addrs    []string
	port     int32
	nodePort int32
	// endpoints are the endpoint IPs traffic is sent to.
	endpoints []string
}

func newFragment(inputs []any) *fragment {
	f := &fragment{inputs: inputs, chains: map[string][]string{}, sets: map[string]time.Duration{}, maps: map[string]map[string]string{},
		endpoints: map[string]bool{}, udp: map[string]udpPort{}}
	for _, m := range []string{serviceIPsMap, serviceNodePortsMap, noEndpointServicesMap, noEndpointNodePortsMap} {
		f.maps[m] = map[string]string{}
	}
	return f
}

// ruleset is the table's variable part, one fragment per Service. Syncs
// recompute only the fragments whose inputs changed and apply only the
// difference from what is installed.
type ruleset struct {
	fragments map[string]*fragment
	// hairpin holds every endpoint IP: a connection DNATed back to its
	// own source is masqueraded (see hairpinSet).
	hairpin map[string]bool
	// clusterIPs are the proxied Services' cluster IPs: a new connection
	// still addressed to one after DNAT is to a port the Service does not
	// have (or a protocol it does not serve) and is rejected, as upstream,
	// instead of leaving the node for an address nobody owns.
	clusterIPs map[string]bool
}

// merged is every fragment in one (for tests and inspection).
func (r *ruleset) merged() *fragment {
	all := newFragment(nil)
	for _, f := range r.fragments {
		maps.Copy(all.chains, f.chains)
		maps.Copy(all.sets, f.sets)
		maps.Copy(all.endpoints, f.endpoints)
		for m, elems := range f.maps {
			maps.Copy(all.maps[m], elems)
		}
	}
	return all
}

// rulesInput is what the rules are computed from.
type rulesInput struct {
	node        string
	clusterCIDR string
	// dnsIP is the cluster DNS Service's address, answered on this node at
	// dnsTarget ("ip:port") instead of through endpoints; empty: no DNS.
	dnsIP, dnsTarget string
	services         []*corev1.Service
	// slices are the EndpointSlices by "<namespace>/<service name>".
	slices map[string][]*discoveryv1.EndpointSlice
}

// endpoint is one backend of a service port.
type endpoint struct {
	ip    string
	port  int32
	local bool
}

func (e endpoint) String() string { return net.JoinHostPort(e.ip, strconv.Itoa(int(e.port))) }

// dnsFragment is the key of the cluster DNS fragment (not a valid
// "namespace/name").
const dnsFragment = "/cluster-dns"

// computeRules turns Services and EndpointSlices into the table's rules,
// reusing prev's fragments (nil: none) whose inputs are unchanged.
func computeRules(in rulesInput, prev *ruleset) *ruleset {
	r := &ruleset{fragments: make(map[string]*fragment, len(in.services)+1)}
	// unchanged returns prev's fragment id if it was made from inputs.
	unchanged := func(id string, inputs []any) *fragment {
		if prev == nil {
			return nil
		}
		if old := prev.fragments[id]; old != nil && slices.Equal(old.inputs, inputs) {
			return old
		}
		return nil
	}
	if in.dnsIP != "" && in.dnsTarget != "" {
		inputs := []any{in.dnsIP, in.dnsTarget}
		f := unchanged(dnsFragment, inputs)
		if f == nil {
			f = newFragment(inputs)
			f.chains[clusterDNSChain] = []string{
				"meta l4proto udp dnat to " + in.dnsTarget,
				"meta l4proto tcp dnat to " + in.dnsTarget,
			}
			for _, proto := range []string{"udp", "tcp"} {
				f.maps[serviceIPsMap][mapKey(in.dnsIP, proto, 53)] = "goto " + clusterDNSChain
			}
		}
		r.fragments[dnsFragment] = f
	}
	for _, svc := range in.services {
		if !proxied(svc) || svc.Spec.ClusterIP == in.dnsIP {
			continue
		}
		id := svc.Namespace + "/" + svc.Name
		inputs := []any{svc}
		for _, sl := range in.slices[id] {
			inputs = append(inputs, sl)
		}
		f := unchanged(id, inputs)
		if f == nil {
			f = newFragment(inputs)
			for i := range svc.Spec.Ports {
				sp := &svc.Spec.Ports[i]
				proto := strings.ToLower(string(sp.Protocol))
				if proto == "" {
					proto = "tcp"
				}
				all, local := endpointsFor(in, svc, sp)
				f.addServicePort(in, svc, sp, proto, all, local)
			}
		}
		r.fragments[id] = f
	}
	r.clusterIPs = make(map[string]bool, len(in.services)+1)
	if in.dnsIP != "" && in.dnsTarget != "" {
		r.clusterIPs[in.dnsIP] = true
	}
	for _, svc := range in.services {
		if proxied(svc) {
			r.clusterIPs[svc.Spec.ClusterIP] = true
		}
	}
	r.hairpin = make(map[string]bool, len(r.fragments)*4)
	for _, f := range r.fragments {
		for ep := range f.endpoints {
			if host, _, err := net.SplitHostPort(ep); err == nil {
				r.hairpin[host] = true
			}
		}
	}
	return r
}

// proxied reports whether svc gets rules: it has a cluster IP (ExternalName
// and headless Services live in DNS only) and a usable IPv4 address.
func proxied(svc *corev1.Service) bool {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	ip := net.ParseIP(svc.Spec.ClusterIP)
	return ip != nil && ip.To4() != nil
}

// endpointsFor returns the usable endpoints of one service port and those
// on this node. Ready endpoints are used; when none is ready, serving
// endpoints that are terminating take their place (as upstream), so
// connections drain instead of failing during a rollout.
func endpointsFor(in rulesInput, svc *corev1.Service, sp *corev1.ServicePort) (all, local []endpoint) {
	var ready, terminating []endpoint
	seen := map[string]bool{}
	for _, sl := range in.slices[svc.Namespace+"/"+svc.Name] {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32 = -1
		for _, p := range sl.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			spProto := sp.Protocol
			if spProto == "" {
				spProto = corev1.ProtocolTCP
			}
			if name == sp.Name && proto == spProto && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			e := endpoint{ip: ep.Addresses[0], port: port, local: ep.NodeName != nil && *ep.NodeName == in.node}
			if seen[e.String()] || net.ParseIP(e.ip).To4() == nil {
				continue
			}
			c := ep.Conditions
			switch {
			case c.Ready == nil || *c.Ready:
				ready = append(ready, e)
			case c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating:
				terminating = append(terminating, e)
			default:
				continue
			}
			seen[e.String()] = true
		}
	}
	all = ready
	if len(all) == 0 {
		all = terminating
	}
	slices.SortFunc(all, func(a, b endpoint) int { return strings.Compare(a.String(), b.String()) })
	for _, e := range all {
		if e.local {
			local = append(local, e)
		}
	}
	return all, local
}

// addServicePort adds the rules of one service port. Traffic to the
// cluster IP goes to the service chain (every endpoint) or, with
// internalTrafficPolicy Local, the local chain (this node's endpoints);
// traffic to node ports, external IPs and load-balancer IPs goes through
// the external chain, which masquerades it (externalTrafficPolicy
// Cluster) or keeps the client's address and uses only local endpoints
// (Local). A port without endpoints is rejected before DNAT.
func (r *fragment) addServicePort(in rulesInput, svc *corev1.Service, sp *corev1.ServicePort, proto string, all, local []endpoint) {
	id := svc.Namespace + "/" + svc.Name + "/" + proto + "/" + sp.Name
	svcChain := chainName("service", id)
	localChain := chainName("local", id)
	extChain := chainName("external", id)
	clusterIP := svc.Spec.ClusterIP
	var external []string
	external = append(external, svc.Spec.ExternalIPs...)
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			external = append(external, ing.IP)
		}
	}
	slices.Sort(external)
	external = slices.Compact(external)
	hasNodePort := sp.NodePort > 0 && (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer)
	hasExternal := hasNodePort || len(external) > 0
	intLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	extLocal := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal && hasExternal

	if proto == "udp" {
		u := udpPort{addrs: append([]string{clusterIP}, external...), port: sp.Port}
		if hasNodePort {
			u.nodePort = sp.NodePort
		}
		for _, e := range all {
			u.endpoints = append(u.endpoints, e.ip)
		}
		r.udp[id] = u
	}
	if len(all) == 0 {
		// Nothing to send it to: reject (ICMP port unreachable / TCP reset).
		r.maps[noEndpointServicesMap][mapKey(clusterIP, proto, sp.Port)] = "goto " + rejectChain
		for _, ip := range external {
			r.maps[noEndpointServicesMap][mapKey(ip, proto, sp.Port)] = "goto " + rejectChain
		}
		if hasNodePort {
			r.maps[noEndpointNodePortsMap][proto+" . "+strconv.Itoa(int(sp.NodePort))] = "goto " + rejectChain
		}
		return
	}

	var affinity time.Duration
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = defaultAffinityTimeout
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	// nft names may not hold ':', so an endpoint is "ip/port" in them.
	epID := func(e endpoint) string { return id + "__" + e.ip + "/" + strconv.Itoa(int(e.port)) }
	epChain := func(e endpoint) string { return chainName("endpoint", epID(e)) }
	affinitySet := func(e endpoint) string { return chainName("affinity", epID(e)) }
	for _, e := range all {
		r.endpoints[e.String()] = true
		if affinity > 0 {
			// Only affinity needs a chain per endpoint: the choice is
			// remembered there, per client.
			r.sets[affinitySet(e)] = affinity
			r.chains[epChain(e)] = []string{
				fmt.Sprintf("update @%s { ip saddr }", affinitySet(e)),
				fmt.Sprintf("meta l4proto %s dnat to %s", proto, e),
			}
		}
	}
	balance := func(eps []endpoint) []string {
		switch {
		case len(eps) == 0:
			// externalTrafficPolicy/internalTrafficPolicy Local without a
			// local endpoint: dropped, as upstream.
			return []string{"drop"}
		case affinity > 0:
			var rules []string
			for _, e := range eps {
				rules = append(rules, fmt.Sprintf("ip saddr @%s goto %s", affinitySet(e), epChain(e)))
			}
			targets := make([]string, len(eps))
			for i, e := range eps {
				targets[i] = fmt.Sprintf("%d : goto %s", i, epChain(e))
			}
			return append(rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(eps), strings.Join(targets, " , ")))
		case len(eps) == 1:
			return []string{fmt.Sprintf("meta l4proto %s dnat to %s", proto, eps[0])}
		default:
			// One rule picks and translates: far fewer objects for nft to
			// load than a chain per endpoint, which keeps syncs fast.
			targets := make([]string, len(eps))
			for i, e := range eps {
				targets[i] = fmt.Sprintf("%d : %s . %d", i, e.ip, e.port)
			}
			return []string{fmt.Sprintf("meta l4proto %s dnat ip to numgen random mod %d map { %s }", proto, len(eps), strings.Join(targets, " , "))}
		}
	}

	svcRules := []string{}
	if in.clusterCIDR != "" {
		// Traffic from outside the pod network (the node itself, other
		// hosts) is masqueraded so that replies come back through here.
		svcRules = append(svcRules, fmt.Sprintf("ip daddr %s %s dport %d ip saddr != %s jump %s", clusterIP, proto, sp.Port, in.clusterCIDR, markMasqChain))
	}
	r.chains[svcChain] = append(svcRules, balance(all)...)
	if intLocal || extLocal {
		r.chains[localChain] = balance(local)
	}
	internal := svcChain
	if intLocal {
		internal = localChain
	}
	r.maps[serviceIPsMap][mapKey(clusterIP, proto, sp.Port)] = "goto " + internal
	if !hasExternal {
		return
	}
	var ext []string
	if extLocal {
		if in.clusterCIDR != "" {
			// Pods reaching a node port or LB IP are cluster traffic.
			ext = append(ext, fmt.Sprintf("ip saddr %s goto %s", in.clusterCIDR, svcChain))
		}
		ext = append(ext,
			"fib saddr type local jump "+markMasqChain,
			"fib saddr type local goto "+svcChain,
			"goto "+localChain)
	} else {
		ext = append(ext, "jump "+markMasqChain, "goto "+svcChain)
	}
	r.chains[extChain] = ext
	for _, ip := range external {
		r.maps[serviceIPsMap][mapKey(ip, proto, sp.Port)] = "goto " + extChain
	}
	if hasNodePort {
		r.maps[serviceNodePortsMap][proto+" . "+strconv.Itoa(int(sp.NodePort))] = "goto " + extChain
	}
}

func mapKey(ip, proto string, port int32) string {
	return ip + " . " + proto + " . " + strconv.Itoa(int(port))
}

// chainName names a per-service object: a short hash keeps names unique
// and bounded, the readable part says what it is for.
func chainName(kind, id string) string {
	sum := sha256.Sum256([]byte(id))
	h := base32.StdEncoding.EncodeToString(sum[:5])
	name := kind + "-" + h + "-" + id
	// nft names are at most 256 bytes; ids stay far below that, but keep
	// the bound explicit.
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}
