// Package hostgw routes pod traffic between nodes the way flannel's
// host-gw backend does: for every other Node it keeps a route
//
//	<that Node's podCIDR> via <that Node's InternalIP>
//
// in the host's main routing table, so a packet from a local pod to a pod
// on another node leaves through the host's own link to that node and
// arrives unchanged (no encapsulation, no NAT). The nodes must share a
// layer-2 segment: the kernel refuses a gateway it cannot reach on a
// link, and such a Node's route is retried until it can.
//
// The common path, inside an agent that already has a clientset:
//
//	f := informers.NewSharedInformerFactory(client, 0)
//	routes, err := hostgw.New(hostgw.Config{NodeName: name, StateDir: dir, Log: log}, f)
//	f.Start(ctx.Done())
//	go routes.Run(ctx)
//	...
//	hostgw.Teardown(dir) // at --cleanup-on-exit, after Run has returned
//
// # What is skipped
//
// The Node itself, any Node whose podCIDR is this Node's own, Nodes
// without a podCIDR or an IPv4 InternalIP, and Nodes whose InternalIP is
// an address of this host. The last case is several nodes on one machine:
// each node's pod bridge already gives the host a connected route to its
// range, and a route via one of the host's own addresses would be wrong.
//
// # Ownership
//
// Several skiff nodes (of one cluster or several) may run on one machine,
// each with its own hostgw, and two of them may want a route to the same
// remote range. Every route hostgw installs therefore carries
//
//   - the route protocol [Protocol], so `ip route show proto 83` lists
//     them all, and
//   - a metric (route priority) of its own, derived from the state
//     directory and kept in the state file, so the kernel holds one route
//     per owner even for the same destination and a replace or delete by
//     one owner never touches another's;
//
// and the destinations installed are written (before the routes are
// added) to routes.json in the state directory. Only a destination listed
// there, with the owner's protocol and metric, is ever deleted: a
// restarted agent removes the routes of Nodes deleted while it was down,
// and Teardown removes exactly the routes this node installed.
//
// # Reconciling
//
// The controller is level-triggered with a single work item: any Node
// event that changes a podCIDR or an InternalIP, and a periodic resync
// (Config.Resync), recompute the desired routes from the Node lister and
// the host's addresses, then add missing routes, replace routes with a
// wrong gateway and delete stale ones. A failed pass is retried with the
// work queue's rate-limited back-off.
package hostgw
