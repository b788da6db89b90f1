package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// TestKubeletManagedEtcHosts: a pod's containers see the kubelet's
// /etc/hosts (header, the pod IP with its FQDN, spec.hostAliases), a
// container that mounts its own /etc/hosts keeps it, and a hostNetwork pod
// sees the node's file plus its aliases, as on upstream (the conformance
// specs "KubeletManagedEtcHosts" and "... with hostAliases should write
// entries to /etc/hosts").
func TestKubeletManagedEtcHosts(t *testing.T) {
	c := nodeCluster(t)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	spec := `  hostname: web-0
  subdomain: web
  hostAliases:
  - ip: 123.45.67.89
    hostnames: [foo, bar]
`
	k.MustIn(t, c, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own-hosts}\ndata:\n  hosts: \"1.2.3.4 mine\\n\"\n", "create", "-f", "-")
	k.MustIn(t, c, podYAML("hosts", busybox, "Never", `  - name: own
    image: `+busybox+`
    imagePullPolicy: IfNotPresent
    command: [cat, /etc/hosts]
    volumeMounts:
    - {name: own, mountPath: /etc/hosts, subPath: hosts}
`+spec+`  volumes:
  - name: own
    configMap: {name: own-hosts}
`, "cat", "/etc/hosts"), "create", "-f", "-")
	p := waitPod(t, c, "hosts", 60*time.Second, "finished", finished)
	if p.Status.Phase != corev1.PodSucceeded || p.Status.PodIP == "" {
		t.Fatalf("pod %s (IP %q): %+v", p.Status.Phase, p.Status.PodIP, p.Status.ContainerStatuses)
	}
	out := k.Must(t, c, "logs", "hosts", "-c", "main")
	for _, want := range []string{
		"# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		p.Status.PodIP + "\tweb-0.web.default.svc.cluster.local\tweb-0\n",
		"\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/etc/hosts lacks %q:\n%s", want, out)
		}
	}
	if out := k.Must(t, c, "logs", "hosts", "-c", "own"); out != "1.2.3.4 mine\n" {
		t.Errorf("container mounting its own /etc/hosts reads:\n%s", out)
	}

	k.MustIn(t, c, podYAML("hostnet-hosts", busybox, "Never", "  hostNetwork: true\n"+spec, "cat", "/etc/hosts"), "create", "-f", "-")
	if p := waitPod(t, c, "hostnet-hosts", 60*time.Second, "finished", finished); p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("hostNetwork pod %s: %+v", p.Status.Phase, p.Status.ContainerStatuses)
	}
	node, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Kubernetes-managed hosts file (host network).\n" + string(node) + "\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\n"
	if out := k.Must(t, c, "logs", "hostnet-hosts"); out != want {
		t.Errorf("hostNetwork pod's /etc/hosts:\n%s\nwant:\n%s", out, want)
	}
}
