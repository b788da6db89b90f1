package framework

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/pkg/localcluster"
)

// LocalCluster is a cluster made by `skiff cluster create`: every node in
// a network namespace of its own. Cluster drives it with kubectl and
// client-go through the kubeconfig create printed.
type LocalCluster struct {
	*Cluster
	// Name and Dir are the cluster's name and --dir.
	Name, Dir string
	// State is its cluster.json, as create left it.
	State   *localcluster.Cluster
	bin     string
	deleted bool
}

// Delete runs `skiff cluster delete` now (the test's cleanup then skips it).
func (l *LocalCluster) Delete(t testing.TB) {
	t.Helper()
	l.deleted = true
	if out, err := l.skiff("cluster", "delete", l.Name); err != nil {
		t.Fatalf("skiff cluster delete %s: %v\n%s", l.Name, err, out)
	}
}

// CreateLocalCluster runs `skiff cluster create NAME --dir (temp) args...`
// (a fresh name; busybox and the test server images imported) and
// deletes it when the test ends.
func CreateLocalCluster(t testing.TB, busybox, testServer string, args ...string) *LocalCluster {
	t.Helper()
	dir := t.TempDir()
	name := fmt.Sprintf("e2e%06x", time.Now().UnixNano()&0xffffff)
	images := t.TempDir()
	argv := []string{"cluster", "create", name, "--dir", dir}
	if busybox != "" {
		SaveImage(t, BusyboxImage(t), busybox, filepath.Join(images, "busybox.tar"))
		argv = append(argv, "--image", filepath.Join(images, "busybox.tar"))
	}
	if testServer != "" {
		SaveImage(t, TestServerImage(t), testServer, filepath.Join(images, "testserver.tar"))
		argv = append(argv, "--image", filepath.Join(images, "testserver.tar"))
	}
	l := &LocalCluster{Name: name, Dir: dir, bin: Binary(t)}
	t.Cleanup(func() {
		if l.deleted {
			return
		}
		if out, err := l.skiff("cluster", "delete", name); err != nil {
			t.Errorf("skiff cluster delete %s: %v\n%s", name, err, out)
		}
	})
	out, err := l.skiff(append(argv, args...)...)
	if err != nil {
		t.Fatalf("skiff cluster create: %v\n%s", err, out)
	}
	state, err := localcluster.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.State = state
	// DataDir anchors kubectl's private HOME (Cluster.home) in dir.
	l.Cluster = &Cluster{t: t, Bin: l.bin, DataDir: filepath.Join(dir, "data"), Kubeconfig: filepath.Join(dir, "kubeconfig")}
	return l
}

func (l *LocalCluster) skiff(args ...string) (string, error) {
	var b bytes.Buffer
	cmd := exec.Command(l.bin, args...)
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// NodeName is the full name of a node ("agent-0" -> NAME-agent-0).
func (l *LocalCluster) NodeName(short string) string { return l.Name + "-" + short }

// Node runs `skiff cluster node ACTION NAME NODE` (NODE short, as agent-0).
func (l *LocalCluster) Node(t testing.TB, action, node string) {
	t.Helper()
	if out, err := l.skiff("cluster", "node", action, l.Name, node); err != nil {
		t.Fatalf("skiff cluster node %s %s: %v\n%s", action, node, err, out)
	}
}

// Logs is the tail of every node's log, for failure reports.
func (l *LocalCluster) Logs(lines int) string {
	var b strings.Builder
	for _, n := range l.State.Nodes {
		out, _ := exec.Command("tail", "-n", fmt.Sprint(lines), n.LogFile()).CombinedOutput()
		fmt.Fprintf(&b, "== %s\n%s\n", n.Name, out)
	}
	return b.String()
}
