// Package egress masquerades pod traffic that leaves the cluster: a
// packet from one of this node's pods to an address outside the cluster
// CIDR leaves with the address of the host link it goes out of (as with
// flannel's ip-masq), so the world outside, which has no route to the pod
// ranges, can answer. Pod-to-pod traffic keeps its addresses, so a pod
// sees its peers as they are.
//
// The rules live in an nftables table of their own, one per node
// instance (several skiff nodes may share a machine), named after the
// node's pod bridge by TableName:
//
//	table ip skiff-egress-<bridge> {
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr <podCIDR> ip daddr != <clusterCIDR> ip daddr != 224.0.0.0/4 masquerade fully-random
//		}
//	}
//
// Sync writes the whole table in one nft transaction (delete and re-create),
// so it is atomic and idempotent: whatever the table held before, it holds
// exactly these rules after. Teardown deletes the table; nothing else on
// the host is touched. knftables runs the nft binary (Debian's nftables
// package), in the network namespace of the calling thread.
//
// The common path, inside an agent that already has a clientset and its
// Node informer factory:
//
//	m, err := egress.New(egress.Config{NodeName: name, Bridge: bridge, ClusterCIDR: clusterCIDR}, f)
//	f.Start(ctx.Done())
//	go m.Run(ctx) // follows the Node's spec.podCIDR
//	...
//	egress.Teardown(ctx, bridge) // at --cleanup-on-exit, after Run has returned
//
// # Why Services need no rule here
//
// Traffic to a Service's ClusterIP is DNAT'd by the service proxy in the
// prerouting hook (dstnat), before routing, so by postrouting its
// destination is the chosen endpoint. An endpoint that is a pod is inside
// the cluster CIDR and keeps the client pod's address, as Kubernetes
// promises; an endpoint outside it (a hostNetwork pod on another node, an
// API server address) is masqueraded like any other traffic leaving the
// pod network, which is what lets it answer. An endpoint on this host is
// delivered locally (input hook), so postrouting never sees it. A ClusterIP
// with no endpoints is rejected by the proxy before it gets here. So the
// service CIDR needs no exception. Hairpin traffic (a pod reaching itself
// through a Service) is the proxy's concern: it never leaves the cluster
// CIDR, so this rule does not masquerade it.
//
// Multicast (224.0.0.0/4) is left alone, as flannel does: it is not
// routed off the link and rewriting its source helps nobody.
// fully-random picks the source port at random, avoiding the port-clash
// races of sequential allocation when many pods connect out at once.
package egress
