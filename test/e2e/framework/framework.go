// Package framework starts real skiff clusters for end-to-end tests and
// drives them with the kubectl binaries installed on the machine.
//
// A Cluster is a `skiff server` process (the binary named by $SKIFF_BIN,
// built by `make e2e`) in a temp data dir on a free loopback port. It is
// stopped with SIGTERM (SIGKILL after a timeout) when the test ends, even
// when the test fails.
package framework

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Binary returns the skiff binary under test.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("SKIFF_BIN")
	if bin == "" {
		t.Fatal("SKIFF_BIN is not set; run the e2e tests with `make e2e`")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("SKIFF_BIN: %v", err)
	}
	return bin
}

// Cluster is a running skiff server.
type Cluster struct {
	t          testing.TB
	Bin        string
	DataDir    string
	Port       int
	Kubeconfig string
	Args       []string
	// ClusterCIDR is the pod network ("" for the default, 10.42.0.0/16).
	ClusterCIDR string
	cmd         *exec.Cmd
	done        chan struct{}
	log         *bytes.Buffer
	logMu       *sync.Mutex
}

// NodeName is the name of a test cluster's own node.
const NodeName = "skiff-node"

// Options adjust a cluster before it starts.
type Options struct {
	// ExtraArgs are appended to `skiff server`.
	ExtraArgs []string
	// DataDir reuses a data dir (for restart tests); a temp dir otherwise.
	DataDir string
	// Port reuses a port; a free one otherwise.
	Port int
	// Agent runs the server's own node agent (off by default: most tests
	// need only the control plane).
	Agent bool
}

// StartCluster starts a server and waits until it is ready.
func StartCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin := Binary(t)
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(t.TempDir(), "data")
	}
	if opts.Port == 0 {
		opts.Port = FreePort(t)
	}
	c := &Cluster{t: t, Bin: bin, DataDir: opts.DataDir, Port: opts.Port, Kubeconfig: filepath.Join(opts.DataDir, "admin.kubeconfig"),
		log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	c.Args = []string{"server", "--data-dir", c.DataDir, "--https-listen-port", fmt.Sprint(c.Port), "--bind-address", "127.0.0.1"}
	if !opts.Agent {
		c.Args = append(c.Args, "--disable-agent")
	} else {
		// Tests leave nothing behind: pods, mounts, cgroups, the runtime.
		c.Args = append(c.Args, "--cleanup-on-exit", "--node-name", NodeName)
		if !slices.Contains(opts.ExtraArgs, "--cluster-cidr") {
			c.Args = append(c.Args, networkArgs(c.DataDir)...)
		}
	}
	if i := slices.Index(c.Args, "--cluster-cidr"); i >= 0 && i+1 < len(c.Args) {
		c.ClusterCIDR = c.Args[i+1]
	}
	c.Args = append(c.Args, opts.ExtraArgs...)
	c.start()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("skiff server log:\n%s", c.Log())
		}
	})
	c.WaitReady(30 * time.Second)
	return c
}

// networkArgs give a node cluster pod and service ranges of its own
// (stable for its data dir, so restarts keep them): clusters of tests
// running at the same time on one machine, as several clusters may,
// must not route each other's addresses.
func networkArgs(dataDir string) []string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(dataDir))
	a := 100 + 2*(h.Sum32()%70)
	return []string{"--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", a), "--service-cidr", fmt.Sprintf("10.%d.0.0/16", a+1)}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Process is a skiff process started by a test (an agent).
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
	mu   *sync.Mutex
}

// StartProcess runs the skiff binary with args until the test ends.
func StartProcess(t testing.TB, args ...string) *Process {
	t.Helper()
	return startProcess(t, exec.Command(Binary(t), args...), args)
}

// startProcess starts cmd, which runs skiff with args, until the test ends.
func startProcess(t testing.TB, cmd *exec.Cmd, args []string) *Process {
	t.Helper()
	p := &Process{cmd: cmd, done: make(chan struct{}), log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	w := lockedWriter{mu: p.mu, b: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start skiff %v: %v", args, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("skiff %v log:\n%s", args, p.Log())
		}
	})
	return p
}

// Log returns what the process printed so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Pid is the server process's id.
func (c *Cluster) Pid() int { return c.cmd.Process.Pid }

// Done is closed when the process exits.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM and waits (SIGKILL after 20s).
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// URL is the server's address.
func (c *Cluster) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", c.Port) }

// Token is the server's full join token.
func (c *Cluster) Token(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.DataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (c *Cluster) start() {
	c.t.Helper()
	// A stale kubeconfig would make WaitReady return before the new
	// process is up.
	_ = os.Remove(c.Kubeconfig)
	cmd := exec.Command(c.Bin, c.Args...)
	w := lockedWriter{mu: c.logMu, b: c.log}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start skiff server: %v", err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.done) }()
}

// Log returns what the server printed so far.
func (c *Cluster) Log() string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	return c.log.String()
}

// WaitReady waits for the admin kubeconfig and /readyz.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			c.t.Fatalf("skiff server exited early:\n%s", c.Log())
		default:
		}
		if _, err := os.Stat(c.Kubeconfig); err == nil {
			if cs, err := kubernetes.NewForConfig(c.RESTConfig()); err == nil {
				body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
				if err == nil && string(body) == "ok" {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("skiff server not ready after %v:\n%s", timeout, c.Log())
}

// Stop sends SIGTERM and waits (SIGKILL after 20s).
func (c *Cluster) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Kill sends SIGKILL and waits, simulating a crash.
func (c *Cluster) Kill() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// Restart starts the server again on the same data dir and port.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.start()
	c.WaitReady(30 * time.Second)
}

// RESTConfig returns a client configuration for the admin.
func (c *Cluster) RESTConfig() *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		c.t.Fatalf("load kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	return cfg
}

// Client returns a clientset for the admin.
func (c *Cluster) Client() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(c.RESTConfig())
}

// FreePort returns a TCP port free on loopback.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Kubectl is one kubectl client: an installed binary or skiff's own.
type Kubectl struct {
	// Name is "1.27" ... or "skiff" for `skiff kubectl`.
	Name string
	argv []string
}

// Kubectls returns every installed kubectl version plus skiff's embedded
// one. $SKIFF_KUBECTLS (comma-separated names) narrows the set.
func Kubectls(t testing.TB) []Kubectl {
	t.Helper()
	var out []Kubectl
	if path, err := exec.LookPath("kubectl"); err == nil {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			matches, _ := filepath.Glob(filepath.Join(filepath.Dir(real), "kubectl.1.*"))
			sort.Strings(matches)
			for _, m := range matches {
				out = append(out, Kubectl{Name: strings.TrimPrefix(filepath.Base(m), "kubectl."), argv: []string{m}})
			}
		}
		if len(out) == 0 {
			out = append(out, Kubectl{Name: "installed", argv: []string{path}})
		}
	}
	out = append(out, Kubectl{Name: "skiff", argv: []string{Binary(t), "kubectl"}})
	if only := os.Getenv("SKIFF_KUBECTLS"); only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			keep[n] = true
		}
		var filtered []Kubectl
		for _, k := range out {
			if keep[k.Name] {
				filtered = append(filtered, k)
			}
		}
		out = filtered
	}
	return out
}

// Result is what a kubectl run printed.
type Result struct {
	Stdout, Stderr string
	Err            error
}

// Run runs kubectl against the cluster with args; env adds variables.
func (k Kubectl) Run(c *Cluster, stdin string, env []string, args ...string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append(append([]string{}, k.argv...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HOME="+c.home()), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// home is a private HOME so kubectl's discovery cache never leaks between
// clusters or versions.
func (c *Cluster) home() string {
	h := filepath.Join(filepath.Dir(c.DataDir), "home")
	_ = os.MkdirAll(h, 0o700)
	return h
}

// Must runs kubectl and fails the test if it fails.
func (k Kubectl) Must(t testing.TB, c *Cluster, args ...string) string {
	t.Helper()
	r := k.Run(c, "", nil, args...)
	if r.Err != nil {
		t.Fatalf("kubectl %s %s: %v\nstdout:\n%s\nstderr:\n%s", k.Name, strings.Join(args, " "), r.Err, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// MustIn runs kubectl with stdin and fails the test if it fails.
func (k Kubectl) MustIn(t testing.TB, c *Cluster, stdin string, args ...string) string {
	t.Helper()
	r := k.Run(c, stdin, nil, args...)
	if r.Err != nil {
		t.Fatalf("kubectl %s %s: %v\nstdout:\n%s\nstderr:\n%s", k.Name, strings.Join(args, " "), r.Err, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Running is a kubectl started in the background.
type Running struct {
	cmd            *exec.Cmd
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	stopped        bool
}

// Output returns what it has printed so far.
func (r *Running) Output() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Result{Stdout: r.stdout.String(), Stderr: r.stderr.String()}
}

// Stop kills it (once) and returns all it printed.
func (r *Running) Stop() Result {
	r.mu.Lock()
	stopped := r.stopped
	r.stopped = true
	r.mu.Unlock()
	if !stopped {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
	return r.Output()
}

// Command returns the command that runs kubectl against the cluster with
// args, for callers that wire its standard streams themselves (a pty).
func (k Kubectl) Command(c *Cluster, args ...string) *exec.Cmd {
	argv := append(append([]string{}, k.argv...), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HOME="+c.home())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start runs kubectl in the background (for -w, logs -f); it is stopped
// when the test ends at the latest.
func (k Kubectl) Start(t testing.TB, c *Cluster, args ...string) *Running {
	t.Helper()
	argv := append(append([]string{}, k.argv...), args...)
	r := &Running{cmd: exec.Command(argv[0], argv[1:]...)}
	r.cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HOME="+c.home())
	r.cmd.Stdout, r.cmd.Stderr = lockedWriter{mu: &r.mu, b: &r.stdout}, lockedWriter{mu: &r.mu, b: &r.stderr}
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start kubectl: %v", err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}

// Eventually polls cond every 50ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
