// Package hostport publishes pods' host ports (containerPort.hostPort) on
// the node, as CNI's portmap plugin does for containerd: traffic to
// hostIP:hostPort with the mapping's protocol is DNATed to the pod's
// address and container port. A mapping whose hostIP is unset or 0.0.0.0
// answers on every local address of the node; one with a hostIP only
// there, so pods may share a port number on different addresses or
// protocols (the scheduler's NodePorts filter keeps real clashes apart).
//
// The rules live in an nftables table of their own per node instance,
// named after the node's pod bridge by TableName:
//
//	table ip skiff-hostports-<bridge> {
//		chain hostports {
//			ip daddr 10.0.0.5 tcp dport 8080 dnat to 10.88.0.7:80
//			fib daddr type local udp dport 53 dnat to 10.88.0.8:53
//		}
//		chain prerouting { type nat hook prerouting priority dstnat; jump hostports }
//		chain output { type nat hook output priority dstnat; fib daddr type local jump hostports }
//		chain postrouting {
//			type nat hook postrouting priority srcnat;
//			ip saddr 127.0.0.0/8 ct status dnat ip daddr 10.88.0.7 tcp dport 80 masquerade
//			ip saddr 10.88.0.7 ip daddr 10.88.0.7 tcp dport 80 masquerade
//		}
//	}
//
// Traffic from the node to 127.0.0.1:hostPort leaves through the pod
// bridge with a loopback source, which the kernel refuses unless the
// bridge has route_localnet set; Sync sets it and the postrouting chain
// masquerades such packets (and a pod reaching itself through its own
// host port) so that the replies come back through the node, as the
// portmap plugin does.
//
// Sync writes the whole table in one nft transaction, so it is atomic and
// idempotent; UDP conntrack entries of newly published ports are cleared
// so datagrams sent before the mapping existed do not keep missing it.
// Teardown deletes the table.
package hostport
