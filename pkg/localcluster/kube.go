package localcluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// writeKubeconfig writes the server's admin kubeconfig to dst with every
// cluster's server set to url (the forwarder on the host).
func writeKubeconfig(admin, dst, url string) error {
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	for _, cl := range cfg.Clusters {
		cl.Server = url
	}
	if err := clientcmd.WriteToFile(*cfg, dst); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// Client is a clientset for the cluster, through its kubeconfig.
func (c *Cluster) Client() (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(rc)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitReady waits until every node of the cluster is registered and
// Ready, reporting each as it joins and turns Ready, and failing early
// when a node's process exits.
func (m *Manager) waitReady(ctx context.Context, c *Cluster) error {
	cs, err := c.Client()
	if err != nil {
		return err
	}
	start := time.Now()
	joined, ready := map[string]bool{}, map[string]bool{}
	for {
		if list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
			for i := range list.Items {
				n := &list.Items[i]
				if !joined[n.Name] {
					joined[n.Name] = true
					m.logf("node %s joined (%.1fs)", n.Name, time.Since(start).Seconds())
				}
				if nodeReady(n) && !ready[n.Name] {
					ready[n.Name] = true
					m.logf("node %s Ready (%.1fs)", n.Name, time.Since(start).Seconds())
				}
			}
		}
		var waiting []string
		for _, n := range c.Nodes {
			if !ready[n.Name] {
				waiting = append(waiting, n.Name)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		for _, n := range c.Nodes {
			if !alive(n.Pid, n.Dir) {
				return fmt.Errorf("node %s exited:\n%s", n.Name, logTail(n.LogFile(), 20))
			}
		}
		select {
		case <-ctx.Done():
			sort.Strings(waiting)
			return fmt.Errorf("nodes not Ready: %s (%w); see the nodes' skiff.log under %s", strings.Join(waiting, ", "), ctx.Err(), c.Dir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
