// Package localcluster runs multi-node skiff clusters on one machine, as
// kind and k3d do but without Docker: every node is a `skiff server` or
// `skiff agent` process in a network namespace of its own, wired by a veth
// pair to a private Linux bridge on the host, with its own data dir and
// containers. A small TCP forwarder in the host's namespace makes the API
// server reachable at 127.0.0.1. The cluster's state (nodes, namespaces,
// addresses, pids, command lines) is recorded in <dir>/cluster.json, so
// that later commands (delete, node stop/start/kill/partition/heal,
// import) find everything the cluster made.
package localcluster
