package sandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestCreateAndRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	sb, err := Create(Config{Dir: dir, Hostname: "web-0", Hosts: []string{"10.42.0.5\tweb-0"}, ResolvConf: ResolvConf([]string{"10.43.0.10"}, []string{"default.svc.cluster.local"}, []string{"ndots:5"})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(dir) })
	for _, k := range []string{"net", "ipc", "uts"} {
		var st unix.Statfs_t
		if err := unix.Statfs(sb.NamespacePath(k), &st); err != nil || st.Type != unix.NSFS_MAGIC {
			t.Fatalf("%s namespace not pinned: %v type %x", k, err, st.Type)
		}
	}
	// Loopback is up and the hostname set inside the namespaces.
	ns, err := netns.GetFromPath(sb.NamespacePath("net"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := h.LinkByName("lo")
	h.Close()
	if err != nil || lo.Attrs().Flags&0x1 == 0 {
		t.Fatalf("loopback not up: %v", err)
	}
	hostname := make(chan string, 1)
	go func() {
		runtime.LockOSThread() // dies with the goroutine: it joins the pod's UTS namespace
		f, err := os.Open(sb.NamespacePath("uts"))
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWUTS)
			f.Close()
		}
		var uts unix.Utsname
		if err == nil {
			err = unix.Uname(&uts)
		}
		if err != nil {
			hostname <- err.Error()
			return
		}
		hostname <- unix.ByteSliceToString(uts.Nodename[:])
	}()
	if got := <-hostname; got != "web-0" {
		t.Fatalf("hostname in the sandbox = %q", got)
	}
	if b, _ := os.ReadFile(sb.File("resolv.conf")); !strings.Contains(string(b), "nameserver 10.43.0.10") || !strings.Contains(string(b), "options ndots:5") {
		t.Fatalf("resolv.conf: %s", b)
	}
	if b, _ := os.ReadFile(sb.File("hosts")); !strings.Contains(string(b), "10.42.0.5\tweb-0") {
		t.Fatalf("hosts: %s", b)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), dir) {
		t.Fatal("namespace mounts left behind")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("sandbox dir left behind: %v", err)
	}
}

// TestDialContext connects to a listener on the sandbox's loopback
// address, which the node's namespace cannot reach.
func TestDialContext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	sb, err := Create(Config{Dir: dir, Hostname: "dial"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(dir) })
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // dies with the goroutine: it joins the pod's network namespace
		ns, err := netns.GetFromPath(sb.NamespacePath("net"))
		if err == nil {
			err = netns.Set(ns)
			ns.Close()
		}
		if err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.ln.Close()
	go func() {
		if c, err := r.ln.Accept(); err == nil {
			_, _ = c.Write([]byte("from the pod"))
			c.Close()
		}
	}()
	addr := r.ln.Addr().String()
	c, err := sb.DialContext(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(b) != "from the pod" {
		t.Fatalf("read %q: %v", b, err)
	}
	// The listener is not in the node's namespace; the calling thread is
	// back in it.
	if c, err := net.Dial("tcp4", addr); err == nil {
		c.Close()
		t.Fatalf("%s answered in the node's network namespace", addr)
	}
}

// TestSysctlsLandInTheSandbox sets an IPC and a net sysctl: the
// sandbox's namespaces have them, the host keeps its own values, and a
// sysctl of no namespace is refused before anything is written.
func TestSysctlsLandInTheSandbox(t *testing.T) {
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	const shm, port = "/proc/sys/kernel/shm_rmid_forced", "/proc/sys/net/ipv4/ip_unprivileged_port_start"
	hostShm, hostPort := read(shm), read(port)
	want := map[string]string{"kernel.shm_rmid_forced": "1", "net/ipv4/ip_unprivileged_port_start": "100"}
	if hostShm == "1" {
		want["kernel.shm_rmid_forced"] = "0"
	}
	dir := filepath.Join(t.TempDir(), "sb")
	sb, err := Create(Config{Dir: dir, Hostname: "sysctl", Sysctls: want})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(dir) })
	type got struct {
		shm, port string
		err       error
	}
	ch := make(chan got, 1)
	go func() {
		runtime.LockOSThread() // dies with the goroutine: it joins the pod's namespaces
		for _, k := range []struct {
			name string
			flag int
		}{{"ipc", unix.CLONE_NEWIPC}, {"net", unix.CLONE_NEWNET}} {
			fd, err := unix.Open(sb.NamespacePath(k.name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Setns(fd, k.flag)
				unix.Close(fd)
			}
			if err != nil {
				ch <- got{err: err}
				return
			}
		}
		a, errA := os.ReadFile(shm)
		b, errB := os.ReadFile(port)
		ch <- got{strings.TrimSpace(string(a)), strings.TrimSpace(string(b)), errors.Join(errA, errB)}
	}()
	g := <-ch
	if g.err != nil {
		t.Fatal(g.err)
	}
	if g.shm != want["kernel.shm_rmid_forced"] || g.port != "100" {
		t.Errorf("inside the sandbox: shm_rmid_forced=%s ip_unprivileged_port_start=%s, want %s and 100", g.shm, g.port, want["kernel.shm_rmid_forced"])
	}
	if read(shm) != hostShm || read(port) != hostPort {
		t.Errorf("the host's values changed")
	}
	swappiness := read("/proc/sys/vm/swappiness")
	if _, err := Create(Config{Dir: filepath.Join(t.TempDir(), "bad"), Hostname: "bad", Sysctls: map[string]string{"vm.swappiness": "1"}}); err == nil || !strings.Contains(err.Error(), "not namespaced") {
		t.Errorf("vm.swappiness: %v, want refused as not namespaced", err)
	}
	if read("/proc/sys/vm/swappiness") != swappiness {
		t.Errorf("the host's vm.swappiness changed")
	}
}
