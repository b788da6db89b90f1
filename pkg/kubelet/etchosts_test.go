package kubelet

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestManagedHostsContent(t *testing.T) {
	const localhost = "# Kubernetes-managed hosts file.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n"
	aliases := []corev1.HostAlias{{IP: "123.45.67.89", Hostnames: []string{"foo", "bar"}}, {IP: "::2", Hostnames: []string{"six"}}}
	for _, tc := range []struct {
		name     string
		ips      []string
		hostname string
		domain   string
		aliases  []corev1.HostAlias
		want     string
	}{
		{"hostname", []string{"10.42.0.5"}, "web-0", "", nil, localhost + "10.42.0.5\tweb-0\n"},
		{"subdomain", []string{"10.42.0.5", "fd00::5"}, "web-0", "web.ns.svc.cluster.local", nil,
			localhost + "10.42.0.5\tweb-0.web.ns.svc.cluster.local\tweb-0\nfd00::5\tweb-0.web.ns.svc.cluster.local\tweb-0\n"},
		{"host aliases", []string{"10.42.0.5"}, "web-0", "", aliases,
			localhost + "10.42.0.5\tweb-0\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\n::2\tsix\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(managedHostsContent(tc.ips, tc.hostname, tc.domain, tc.aliases)); got != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	node := "127.0.0.1\tlocalhost\n192.168.1.2\tnode-a\n"
	want := "# Kubernetes-managed hosts file (host network).\n" + node + "\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\n::2\tsix\n"
	if got := string(hostNetworkHostsContent([]byte(node), aliases)); got != want {
		t.Fatalf("host network: got:\n%s\nwant:\n%s", got, want)
	}
}

// Every container of a pod-network pod gets the kubelet's /etc/hosts
// (FQDN from the subdomain, host aliases), except one that mounts a volume
// at /etc/hosts itself; a hostNetwork pod gets the node's file.
func TestContainersMountManagedEtcHosts(t *testing.T) {
	f := newKubelet(t)
	f.k.cfg.ClusterDomain = "cluster.local"
	pod := probePodSpec(corev1.Container{Name: "main"}, corev1.RestartPolicyAlways)
	pod.Spec.Hostname, pod.Spec.Subdomain = "web-0", "web"
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "123.45.67.89", Hostnames: []string{"foo", "bar"}}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "hosts"}}
	own := corev1.Container{Name: "own", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "hosts", MountPath: "/etc/hosts"}}}
	pod.Spec.Containers = append(pod.Spec.Containers, own)
	volumes := map[string]string{"hosts": "/vol/hosts"}
	for i := range pod.Spec.Containers {
		if err := f.k.startContainer(context.Background(), pod, &pod.Spec.Containers[i], 0, "sb", f.k.sandboxConfig(pod, 0), volumes); err != nil {
			t.Fatal(err)
		}
	}
	hostsMount := func(cfg int) string {
		var found []string
		for _, m := range f.rt.created[cfg].Mounts {
			if m.ContainerPath == "/etc/hosts" {
				found = append(found, m.HostPath)
			}
		}
		if len(found) != 1 {
			t.Fatalf("container %s has %d /etc/hosts mounts: %v", f.rt.created[cfg].Metadata.Name, len(found), found)
		}
		return found[0]
	}
	if got := hostsMount(1); got != "/vol/hosts" {
		t.Errorf("container with its own /etc/hosts volume mounts %s", got)
	}
	path := hostsMount(0)
	if path != f.k.etcHostsFile(pod.UID) {
		t.Errorf("hosts file %s, want %s", path, f.k.etcHostsFile(pod.UID))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Kubernetes-managed hosts file.\n", "10.0.0.9\tweb-0.web.default.svc.cluster.local\tweb-0\n", "# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("hosts file lacks %q:\n%s", want, b)
		}
	}
	if !strings.HasPrefix(string(b), managedHostsHeader) {
		t.Errorf("hosts file does not start with the header:\n%s", b)
	}

	pod.Spec.HostNetwork = true
	if err := f.k.startContainer(context.Background(), pod, &pod.Spec.Containers[0], 1, "sb", f.k.sandboxConfig(pod, 0), volumes); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(hostsMount(2))
	if err != nil {
		t.Fatal(err)
	}
	node, err := os.ReadFile(nodeHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(hostNetworkHostsContent(node, pod.Spec.HostAliases)); string(b) != want {
		t.Errorf("host network hosts file:\n%s\nwant:\n%s", b, want)
	}
}
