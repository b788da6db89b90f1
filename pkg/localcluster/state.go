package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// DefaultRoot holds the clusters created without --dir, and the index
// that finds the others.
const DefaultRoot = "/var/lib/skiff/clusters"

// Role is what a node runs: a server (control plane and a node) or an
// agent (a worker).
type Role string

// The node roles.
const (
	RoleServer Role = "server"
	RoleAgent  Role = "agent"
)

// Node is one node of a local cluster.
type Node struct {
	// Name is the Kubernetes node name, <cluster>-server-0 etc.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// NetNS is the node's network namespace (/run/netns/<NetNS>).
	NetNS string `json:"netns"`
	// HostLink is the host's end of the node's veth pair, on the bridge.
	HostLink string `json:"hostLink"`
	// IP is the node's address on the bridge.
	IP string `json:"ip"`
	// Dir is the node's data dir (--data-dir).
	Dir string `json:"dir"`
	// Args is the skiff command line that runs the node (after the
	// binary), kept to start it again the same way.
	Args []string `json:"args"`
	// Pid is the node's skiff process, 0 when stopped.
	Pid int `json:"pid"`
	// Partitioned says the node's link is cut.
	Partitioned bool `json:"partitioned,omitempty"`
}

// LogFile is where the node's skiff process writes.
func (n *Node) LogFile() string { return filepath.Join(n.Dir, "skiff.log") }

// AgentDir is the node's agent data dir, <dir>/agent.
func (n *Node) AgentDir() string { return filepath.Join(n.Dir, "agent") }

// Cluster is the recorded state of a local cluster.
type Cluster struct {
	Name string `json:"name"`
	// Dir holds the nodes' data dirs, the kubeconfig and this state.
	Dir string `json:"dir"`
	// Binary is the skiff binary that runs the nodes.
	Binary string `json:"binary"`
	// Subnet is the bridge's network; the bridge has its first address.
	Subnet string `json:"subnet"`
	Bridge string `json:"bridge"`
	// ClusterCIDR and ServiceCIDR are the pod and service networks.
	ClusterCIDR string `json:"clusterCIDR"`
	ServiceCIDR string `json:"serviceCIDR"`
	// APIPort is the loopback port the forwarder listens on.
	APIPort int `json:"apiPort"`
	// ProxyPid is the forwarder's process.
	ProxyPid   int     `json:"proxyPid"`
	Kubeconfig string  `json:"kubeconfig"`
	Nodes      []*Node `json:"nodes"`
}

// StateFile is the cluster's state file in dir.
func StateFile(dir string) string { return filepath.Join(dir, "cluster.json") }

// Node returns the node named name (or, for convenience, the short name
// server-0 / agent-1), or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name || n.Name == c.Name+"-"+name {
			return n
		}
	}
	return nil
}

// Count returns how many nodes have role r.
func (c *Cluster) Count(r Role) int {
	k := 0
	for _, n := range c.Nodes {
		if n.Role == r {
			k++
		}
	}
	return k
}

// Server is the cluster's first server.
func (c *Cluster) Server() *Node {
	for _, n := range c.Nodes {
		if n.Role == RoleServer {
			return n
		}
	}
	return nil
}

// Save writes the state file atomically (it holds the join token in the
// agents' command lines, so it is private).
func (c *Cluster) Save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := StateFile(c.Dir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save cluster state: %w", err)
	}
	if err := os.Rename(tmp, StateFile(c.Dir)); err != nil {
		return fmt.Errorf("save cluster state: %w", err)
	}
	return nil
}

// LoadDir reads the state of the cluster in dir.
func LoadDir(dir string) (*Cluster, error) {
	b, err := os.ReadFile(StateFile(dir))
	if err != nil {
		return nil, fmt.Errorf("cluster state: %w", err)
	}
	var c Cluster
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("cluster state %s: %w", StateFile(dir), err)
	}
	return &c, nil
}

// Index finds clusters by name: those in root/<name>, and those whose dir
// is elsewhere, recorded in root/.index/<name> (a file holding the dir).
type Index struct{ Root string }

func (x Index) pointer(name string) string { return filepath.Join(x.Root, ".index", name) }

// DefaultDir is where a cluster named name lives without --dir.
func (x Index) DefaultDir(name string) string { return filepath.Join(x.Root, name) }

// Add records that the cluster name lives in dir.
func (x Index) Add(name, dir string) error {
	if err := os.MkdirAll(filepath.Dir(x.pointer(name)), 0o700); err != nil {
		return fmt.Errorf("cluster index: %w", err)
	}
	return os.WriteFile(x.pointer(name), []byte(dir+"\n"), 0o600)
}

// Remove forgets the cluster name.
func (x Index) Remove(name string) error {
	err := os.Remove(x.pointer(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Dir returns the dir of the cluster name, or "" when there is none.
func (x Index) Dir(name string) string {
	if b, err := os.ReadFile(x.pointer(name)); err == nil {
		if d := strings.TrimSpace(string(b)); d != "" {
			return d
		}
	}
	if _, err := os.Stat(StateFile(x.DefaultDir(name))); err == nil {
		return x.DefaultDir(name)
	}
	return ""
}

// Load reads the state of the cluster name.
func (x Index) Load(name string) (*Cluster, error) {
	dir := x.Dir(name)
	if dir == "" {
		return nil, fmt.Errorf("no cluster named %q", name)
	}
	return LoadDir(dir)
}

// List returns the clusters the index knows, by name.
func (x Index) List() ([]*Cluster, error) {
	seen := map[string]bool{}
	var out []*Cluster
	add := func(dir string) {
		if c, err := LoadDir(dir); err == nil && !seen[c.Name] {
			seen[c.Name] = true
			out = append(out, c)
		}
	}
	states, _ := filepath.Glob(filepath.Join(x.Root, "*", "cluster.json"))
	for _, s := range states {
		add(filepath.Dir(s))
	}
	pointers, _ := filepath.Glob(filepath.Join(x.Root, ".index", "*"))
	for _, p := range pointers {
		if b, err := os.ReadFile(p); err == nil {
			add(strings.TrimSpace(string(b)))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName accepts names that make valid node names and namespace
// names: DNS labels of at most 40 characters.
func ValidateName(name string) error {
	if len(name) > 40 || !nameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q: want lower-case letters, digits and '-', at most 40, starting and ending with a letter or digit", name)
	}
	return nil
}
