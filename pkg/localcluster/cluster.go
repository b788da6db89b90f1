package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/pkg/mounts"
	"github.com/skiff/skiff/pkg/runtime/daemon"
	"github.com/skiff/skiff/pkg/runtime/runc"
)

// Options are what `skiff cluster create` asks for.
type Options struct {
	Name             string
	Servers, Agents  int
	Dir              string
	Subnet           string
	ClusterCIDR      string
	ServiceCIDR      string
	APIPort          int
	Images           []string
	ControllerMgrArg []string
	// APIServerArg are passed to the servers as --kube-apiserver-arg.
	APIServerArg []string
	// Wait bounds the wait for every node to be Ready; 0 does not wait.
	Wait time.Duration
	// Binary is the skiff binary the nodes run (default this one).
	Binary string
	// Progress receives a line per step as it happens.
	Progress io.Writer
}

// APIServerPort is where a server node's API server listens in its
// namespace.
const APIServerPort = 6443

// stopGrace bounds how long a node's skiff takes to stop on SIGTERM.
const stopGrace = 30 * time.Second

// Manager creates and drives local clusters recorded under an Index.
type Manager struct {
	Index    Index
	Progress io.Writer
}

func (m *Manager) logf(format string, args ...any) {
	if m.Progress != nil {
		fmt.Fprintf(m.Progress, format+"\n", args...)
	}
}

// Create makes the cluster's network, starts its nodes and the API
// forwarder, writes its kubeconfig and waits for its nodes to be Ready.
// A cluster that fails to come up is left in place for its logs; Delete
// removes it.
func (m *Manager) Create(ctx context.Context, o Options) (*Cluster, error) {
	if err := ValidateName(o.Name); err != nil {
		return nil, err
	}
	if o.Servers != 1 {
		return nil, fmt.Errorf("--servers %d: only 1 server is supported for now (HA clusters are not implemented)", o.Servers)
	}
	if o.Agents < 0 {
		return nil, fmt.Errorf("--agents %d: must not be negative", o.Agents)
	}
	if d := m.Index.Dir(o.Name); d != "" {
		return nil, fmt.Errorf("cluster %q already exists (in %s)", o.Name, d)
	}
	if o.Dir == "" {
		o.Dir = m.Index.DefaultDir(o.Name)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(StateFile(dir)); err == nil {
		return nil, fmt.Errorf("%s already holds a cluster", dir)
	}
	if o.Binary == "" {
		if o.Binary, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	for _, img := range o.Images {
		if _, err := os.Stat(img); err != nil {
			return nil, fmt.Errorf("--image: %w", err)
		}
	}
	subnet, err := m.subnet(o.Subnet)
	if err != nil {
		return nil, err
	}
	if ones, _ := subnet.Mask.Size(); ones > 30 || 1<<(32-ones) < o.Servers+o.Agents+3 {
		return nil, fmt.Errorf("--subnet %s is too small for %d nodes", subnet, o.Servers+o.Agents)
	}
	if o.APIPort == 0 {
		if o.APIPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = "10.42.0.0/16"
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.43.0.0/16"
	}
	c := &Cluster{
		Name: o.Name, Dir: dir, Binary: o.Binary, Subnet: subnet.String(), Bridge: BridgeName(o.Name),
		ClusterCIDR: o.ClusterCIDR, ServiceCIDR: o.ServiceCIDR, APIPort: o.APIPort,
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
	}
	for i := 0; i < o.Servers+o.Agents; i++ {
		role, k := RoleServer, i
		if i >= o.Servers {
			role, k = RoleAgent, i-o.Servers
		}
		name := NodeName(o.Name, role, k)
		c.Nodes = append(c.Nodes, &Node{
			Name: name, Role: role, NetNS: NetNSName(name), HostLink: HostLinkName(o.Name, name),
			IP: NthIP(subnet, 2+i).String(), Dir: filepath.Join(dir, name),
		})
	}
	for _, n := range c.Nodes {
		if netnsExists(n.NetNS) || linkExists(n.HostLink) {
			return nil, fmt.Errorf("network namespace %s or link %s exists already: is another cluster named %q around?", n.NetNS, n.HostLink, o.Name)
		}
	}
	if linkExists(c.Bridge) {
		return nil, fmt.Errorf("bridge %s exists already", c.Bridge)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Recorded before anything is made, so that Delete finds it all even
	// if creation fails half-way.
	if err := c.Save(); err != nil {
		return nil, err
	}
	if err := m.Index.Add(c.Name, dir); err != nil {
		return nil, err
	}
	if err := setupBridge(c.Bridge, subnet); err != nil {
		return c, err
	}
	m.logf("bridge %s on %s", c.Bridge, c.Subnet)
	for _, n := range c.Nodes {
		if err := setupNode(c.Bridge, subnet, n); err != nil {
			return c, err
		}
		if err := os.MkdirAll(n.Dir, 0o700); err != nil {
			return c, err
		}
		if err := copyImages(o.Images, agent.ImagesDropDir(n.AgentDir())); err != nil {
			return c, err
		}
	}

	// The server first: the agents need its token.
	srv := c.Server()
	srv.Args = []string{"server", "--data-dir", srv.Dir, "--node-name", srv.Name, "--node-ip", srv.IP,
		"--bind-address", "0.0.0.0", "--cluster-cidr", c.ClusterCIDR, "--service-cidr", c.ServiceCIDR}
	for _, a := range o.ControllerMgrArg {
		srv.Args = append(srv.Args, "--kube-controller-manager-arg", a)
	}
	for _, a := range o.APIServerArg {
		srv.Args = append(srv.Args, "--kube-apiserver-arg", a)
	}
	if err := m.startNode(c, srv); err != nil {
		return c, err
	}
	tokenFile := filepath.Join(srv.Dir, "token")
	admin := filepath.Join(srv.Dir, "admin.kubeconfig")
	if err := waitFiles(ctx, srv, 60*time.Second, tokenFile, admin); err != nil {
		return c, err
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return c, err
	}
	serverURL := fmt.Sprintf("https://%s:%d", srv.IP, APIServerPort)
	for _, n := range c.Nodes {
		if n.Role != RoleAgent {
			continue
		}
		n.Args = []string{"agent", "--server", serverURL, "--token", strings.TrimSpace(string(token)),
			"--data-dir", n.Dir, "--node-name", n.Name, "--node-ip", n.IP}
		if err := m.startNode(c, n); err != nil {
			return c, err
		}
	}
	if err := m.startProxy(c); err != nil {
		return c, err
	}
	if err := writeKubeconfig(admin, c.Kubeconfig, fmt.Sprintf("https://127.0.0.1:%d", c.APIPort)); err != nil {
		return c, err
	}
	if err := c.Save(); err != nil {
		return c, err
	}
	if o.Wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, o.Wait)
		defer cancel()
		if err := m.waitReady(wctx, c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// subnet parses want, or picks a /24 that no host route and no other
// local cluster uses.
func (m *Manager) subnet(want string) (*net.IPNet, error) {
	if want != "" {
		_, n, err := net.ParseCIDR(want)
		if err != nil {
			return nil, fmt.Errorf("--subnet: %w", err)
		}
		return n, nil
	}
	used, err := HostRoutes()
	if err != nil {
		return nil, err
	}
	others, _ := m.Index.List()
	for _, o := range others {
		if _, n, err := net.ParseCIDR(o.Subnet); err == nil {
			used = append(used, n)
		}
	}
	return PickSubnet(used)
}

// startNode starts the node's recorded command line in its namespace,
// detached, and records its pid.
func (m *Manager) startNode(c *Cluster, n *Node) error {
	argv := inNetNS(n.NetNS, append([]string{c.Binary}, n.Args...)...)
	pid, err := startDetached(argv, n.LogFile())
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	n.Pid = pid
	m.logf("node %s (%s) starting at %s, pid %d, log %s", n.Name, n.Role, n.IP, pid, n.LogFile())
	return c.Save()
}

// startProxy starts the forwarder from 127.0.0.1:APIPort to the server.
func (m *Manager) startProxy(c *Cluster) error {
	srv := c.Server()
	argv := []string{c.Binary, "cluster", "proxy", "--listen", fmt.Sprintf("127.0.0.1:%d", c.APIPort),
		"--target", net.JoinHostPort(srv.IP, strconv.Itoa(APIServerPort)), "--cluster-dir", c.Dir}
	pid, err := startDetached(argv, filepath.Join(c.Dir, "proxy.log"))
	if err != nil {
		return err
	}
	c.ProxyPid = pid
	m.logf("API server at https://127.0.0.1:%d (forwarder pid %d)", c.APIPort, pid)
	return c.Save()
}

// waitFiles waits until every file exists, failing early if the node's
// process exits.
func waitFiles(ctx context.Context, n *Node, timeout time.Duration, files ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				missing = f
				break
			}
		}
		if missing == "" {
			return nil
		}
		if !alive(n.Pid, n.Dir) {
			return fmt.Errorf("node %s exited before writing %s:\n%s", n.Name, missing, logTail(n.LogFile(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s did not write %s in %s; see %s", n.Name, missing, timeout, n.LogFile())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the last lines of a log file.
func logTail(file string, lines int) string {
	b, _ := os.ReadFile(file)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func copyImages(files []string, drop string) error {
	if len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(drop, 0o700); err != nil {
		return err
	}
	for i, f := range files {
		if err := copyFile(f, filepath.Join(drop, fmt.Sprintf("%02d-%s", i, filepath.Base(f)))); err != nil {
			return fmt.Errorf("image %s: %w", f, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Delete stops every node, removes what each made (pods, runtime,
// mounts, cgroups), then the namespaces, veths, bridge, forwarder, the
// cluster's dir and its index entry. It goes on past errors, so that a
// second Delete can finish what the first could not.
func (m *Manager) Delete(ctx context.Context, name string) error {
	c, err := m.Index.Load(name)
	if err != nil {
		return err
	}
	// Agents first, the server last, so that the agents' nodes can still
	// reach the API while they stop; the nodes of a role in parallel.
	for _, role := range []Role{RoleAgent, RoleServer} {
		m.eachNode(c, role, func(n *Node) error {
			stopProcess(n.Pid, n.Dir, stopGrace)
			n.Pid = 0
			m.logf("node %s stopped", n.Name)
			return nil
		})
	}
	errs := m.eachNode(c, "", func(n *Node) error { return m.cleanupNode(ctx, c, n) })
	stopProcess(c.ProxyPid, c.Dir, 5*time.Second)
	if err := teardownBridge(c.Bridge); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		_ = c.Save()
		return fmt.Errorf("delete cluster %s (run delete again to retry): %w", name, errors.Join(errs...))
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", c.Dir, err)
	}
	m.logf("cluster %s deleted", name)
	return m.Index.Remove(name)
}

// eachNode runs f on the cluster's nodes of role (all for "") in
// parallel and returns their errors.
func (m *Manager) eachNode(c *Cluster, role Role, f func(*Node) error) []error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, n := range c.Nodes {
		if role != "" && n.Role != role {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(n); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// cleanupNode runs the agent's cleanup in the node's namespace (it stops
// and removes the pods through the runtime, then the runtime), kills
// whatever is left, and removes the node's mounts, cgroups and network.
func (m *Manager) cleanupNode(ctx context.Context, c *Cluster, n *Node) error {
	var errs []error
	if netnsExists(n.NetNS) && dirExists(n.AgentDir()) {
		cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		out, err := exec.CommandContext(cctx, "nsenter", "--net=/run/netns/"+n.NetNS, "--",
			c.Binary, "cluster", "node-cleanup", "--agent-dir", n.AgentDir()).CombinedOutput()
		cancel()
		if err != nil {
			// Not fatal: what follows removes the rest by force.
			m.logf("node %s: cleanup: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
		}
	}
	if k := killNode(n); k > 0 {
		m.logf("node %s: killed %d processes left behind", n.Name, k)
	}
	if dirExists(n.Dir) {
		if err := mounts.UnmountUnder(n.Dir); err != nil {
			errs = append(errs, fmt.Errorf("node %s mounts: %w", n.Name, err))
		}
	}
	cg := daemon.CgroupRoot(n.AgentDir())
	if err := runc.RemoveCgroup(cg); err != nil {
		errs = append(errs, fmt.Errorf("node %s cgroups: %w", n.Name, err))
	}
	_ = runc.RemoveEmptyCgroup(path.Dir(cg))
	if err := teardownNode(n); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func dirExists(d string) bool {
	st, err := os.Stat(d)
	return err == nil && st.IsDir()
}

// CleanupNode is the `node-cleanup` step, run in a node's namespace.
func CleanupNode(ctx context.Context, agentDir string) error {
	return agent.Cleanup(ctx, agentDir, nil)
}

// Status summarises which of the cluster's nodes run.
func (c *Cluster) Status() string {
	up := 0
	for _, n := range c.Nodes {
		if alive(n.Pid, n.Dir) {
			up++
		}
	}
	switch {
	case up == len(c.Nodes):
		return "running"
	case up == 0:
		return "stopped"
	default:
		return fmt.Sprintf("degraded (%d/%d running)", up, len(c.Nodes))
	}
}

// NodeAction is a fault injected into, or lifted from, one node.
type NodeAction string

// The node actions.
const (
	NodeStop      NodeAction = "stop"
	NodeStart     NodeAction = "start"
	NodeKill      NodeAction = "kill"
	NodePartition NodeAction = "partition"
	NodeHeal      NodeAction = "heal"
)

// Node applies action to the node of cluster name: stop SIGTERMs its
// skiff (its containers keep running), kill SIGKILLs it and every
// process of the node, start runs it again with its data dir, partition
// cuts its link to the bridge (everything keeps running) and heal
// restores it.
func (m *Manager) Node(ctx context.Context, name, node string, action NodeAction) error {
	c, err := m.Index.Load(name)
	if err != nil {
		return err
	}
	n := c.Node(node)
	if n == nil {
		return fmt.Errorf("cluster %s has no node %q", name, node)
	}
	switch action {
	case NodeStop:
		stopProcess(n.Pid, n.Dir, stopGrace)
		n.Pid = 0
		m.logf("node %s stopped", n.Name)
	case NodeKill:
		k := killNode(n)
		n.Pid = 0
		m.logf("node %s killed (%d processes)", n.Name, k)
	case NodeStart:
		if alive(n.Pid, n.Dir) {
			return fmt.Errorf("node %s is running (pid %d)", n.Name, n.Pid)
		}
		if len(n.Args) == 0 {
			return fmt.Errorf("node %s has no recorded command line", n.Name)
		}
		if err := m.startNode(c, n); err != nil {
			return err
		}
	case NodePartition, NodeHeal:
		if err := setLink(n.HostLink, action == NodeHeal); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		n.Partitioned = action == NodePartition
		m.logf("node %s %sed", n.Name, strings.TrimSuffix(string(action), "e"))
	default:
		return fmt.Errorf("unknown node action %q (want stop, start, kill, partition or heal)", action)
	}
	return c.Save()
}

// Import imports image tarballs into every node's image store, as
// `skiff images import --data-dir <node dir>` does.
func (m *Manager) Import(ctx context.Context, name string, files []string) error {
	c, err := m.Index.Load(name)
	if err != nil {
		return err
	}
	for _, n := range c.Nodes {
		argv := append([]string{"images", "import", "--data-dir", n.Dir}, files...)
		out, err := exec.CommandContext(ctx, c.Binary, argv...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("import into %s: %w: %s", n.Name, err, strings.TrimSpace(string(out)))
		}
		m.logf("%s: %s", n.Name, strings.TrimSpace(string(out)))
	}
	return nil
}
