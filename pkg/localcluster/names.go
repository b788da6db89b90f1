package localcluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Interface names are at most 15 characters, so the bridge and veth
// names carry a hash of the cluster's (and node's) name instead.

// NetNSPrefix starts every network namespace a local cluster makes.
const NetNSPrefix = "skc-"

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// BridgeName is the host bridge of cluster (13 characters).
func BridgeName(cluster string) string { return "skcbr" + shortHash(cluster) }

// HostLinkName is the host end of node's veth pair (12 characters).
func HostLinkName(cluster, node string) string { return "skcv" + shortHash(cluster+"/"+node) }

// NetNSName is node's network namespace (node names start with the
// cluster's, so namespaces of different clusters differ).
func NetNSName(node string) string { return NetNSPrefix + node }

// NodeName is the i-th node of role r in cluster.
func NodeName(cluster string, r Role, i int) string { return fmt.Sprintf("%s-%s-%d", cluster, r, i) }
