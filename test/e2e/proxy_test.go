package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/pkg/agent"
	"github.com/skiff/skiff/test/e2e/framework"
)

// clientPod starts a busybox pod that sleeps, for `kubectl exec`, and
// returns a function running a shell script in it (failing the test if
// the script fails).
func clientPod(t *testing.T, c *framework.Cluster, k framework.Kubectl, name string) func(script string) string {
	t.Helper()
	k.MustIn(t, c, podYAML(name, busybox, "Never", "", "sleep", "3600"), "create", "-f", "-")
	waitPod(t, c, name, 60*time.Second, "Running", running)
	return func(script string) string {
		t.Helper()
		return k.Must(t, c, "exec", name, "--", "sh", "-c", script)
	}
}

// hostnames counts the "hello from <pod>" answers in out by pod.
func hostnames(out string) map[string]int {
	seen := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "hello from "); ok {
			seen[h]++
		}
	}
	return seen
}

// TestServicesFollowTheBook drives Services on a real node as the book's
// chapter 5 does: a ReplicationController of test servers behind a
// Service, reached from pods by cluster IP and by DNS name, with session
// affinity, two ports, a node port, a headless Service and SRV records.
func TestServicesFollowTheBook(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	k.MustIn(t, c, `apiVersion: v1
kind: ReplicationController
metadata:
  name: kubia
spec:
  replicas: 3
  selector:
    app: kubia
  template:
    metadata:
      labels:
        app: kubia
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: kubia
        image: `+testServer+`
        imagePullPolicy: Never
        env:
        - name: EXTRA_PORTS
          value: "8443"
        ports:
        - name: http
          containerPort: 8080
        - name: https
          containerPort: 8443
`, "create", "-f", "-")
	k.Must(t, c, "expose", "rc", "kubia", "--port=80", "--target-port=8080")
	framework.Eventually(t, 60*time.Second, "3 endpoints of kubia", func() bool {
		ep, err := c.Client().CoreV1().Endpoints("default").Get(ctx, "kubia", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 3
	})
	svc, err := c.Client().CoreV1().Services("default").Get(ctx, "kubia", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP

	// By cluster IP, from a pod: every pod answers over many requests;
	// the pod (started after the Service) has its environment variables.
	sh := clientPod(t, c, k, "client")
	if env := k.Must(t, c, "exec", "client", "--", "env"); !strings.Contains(env, "KUBIA_SERVICE_HOST="+ip) || !strings.Contains(env, "KUBIA_SERVICE_PORT=80") {
		t.Errorf("kubectl exec client -- env:\n%s", env)
	}
	if hosts, cl := sh("cat /etc/hosts"), waitPod(t, c, "client", time.Second, "Running", running); !strings.Contains(hosts, cl.Status.PodIP+"\tclient\n") {
		t.Errorf("the pod's own name is not in its /etc/hosts:\n%s", hosts)
	}
	out := sh("env | grep ^KUBIA_; for i in $(seq 40); do wget -qO- http://" + ip + "/; done")
	if !strings.Contains(out, "KUBIA_SERVICE_HOST="+ip) || !strings.Contains(out, "KUBIA_SERVICE_PORT=80") || !strings.Contains(out, "KUBIA_PORT_80_TCP_ADDR="+ip) {
		t.Errorf("service environment:\n%s", out)
	}
	if seen := hostnames(out); len(seen) != 3 {
		t.Errorf("40 requests to %s reached %v, want all 3 pods", ip, seen)
	}
	// By DNS name, short and qualified.
	out = sh("cat /etc/resolv.conf; for n in kubia kubia.default kubia.default.svc.cluster.local; do wget -qO- http://$n/ || echo FAILED $n; done")
	if strings.Contains(out, "FAILED") || len(hostnames(out)) == 0 || !strings.Contains(out, "search default.svc.cluster.local svc.cluster.local cluster.local") {
		t.Errorf("requests by name:\n%s", out)
	}

	// Session affinity: 50 requests from one client reach one pod.
	k.Must(t, c, "patch", "svc", "kubia", "-p", `{"spec":{"sessionAffinity":"ClientIP"}}`)
	time.Sleep(time.Second) // let the proxy see it (it takes milliseconds)
	out = sh("for i in $(seq 50); do wget -qO- http://kubia/; done")
	if seen := hostnames(out); len(seen) != 1 {
		t.Errorf("with ClientIP affinity 50 requests reached %v", seen)
	}

	// Two ports: 80 -> 8080 and 443 -> 8443.
	k.MustIn(t, c, `apiVersion: v1
kind: Service
metadata:
  name: kubia-two
spec:
  selector:
    app: kubia
  ports:
  - name: http
    port: 80
    targetPort: http
  - name: https
    port: 443
    targetPort: https
`, "create", "-f", "-")
	framework.Eventually(t, 20*time.Second, "kubia-two endpoints", func() bool {
		ep, err := c.Client().CoreV1().Endpoints("default").Get(ctx, "kubia-two", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 3 && len(ep.Subsets[0].Ports) == 2
	})
	out = sh("echo; wget -qO- http://kubia-two:80/port; echo; wget -qO- http://kubia-two:443/port; echo")
	if !strings.Contains(out, "\n8080\n8443") {
		t.Errorf("two-port service answered:\n%s", out)
	}

	// A Service without a selector and Endpoints written by hand (the
	// book's external-service): the mirroring controller turns them into
	// an EndpointSlice, which the proxy and DNS follow.
	kubiaPods, err := c.Client().CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=kubia"})
	if err != nil || len(kubiaPods.Items) == 0 {
		t.Fatalf("kubia pods: %v", err)
	}
	k.MustIn(t, c, `apiVersion: v1
kind: Service
metadata:
  name: external-service
spec:
  ports:
  - port: 80
---
apiVersion: v1
kind: Endpoints
metadata:
  name: external-service
subsets:
- addresses:
  - ip: `+kubiaPods.Items[0].Status.PodIP+`
  ports:
  - port: 8080
`, "create", "-f", "-")
	framework.Eventually(t, 10*time.Second, "the mirrored EndpointSlice", func() bool {
		out := k.Run(c, "", nil, "get", "endpointslices", "-l", "kubernetes.io/service-name=external-service",
			"-o", "jsonpath={.items[*].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by} {.items[*].endpoints[*].addresses[*]}").Stdout
		return out == "endpointslicemirroring-controller.k8s.io "+kubiaPods.Items[0].Status.PodIP
	})
	out = sh("for i in $(seq 20); do wget -qO- http://external-service/ && break; sleep 0.2; done")
	if !strings.Contains(out, "hello from "+kubiaPods.Items[0].Name) {
		t.Errorf("the selectorless Service with hand-written Endpoints answered:\n%s", out)
	}
	k.Must(t, c, "delete", "endpoints", "external-service")
	framework.Eventually(t, 10*time.Second, "the mirrored slice gone with its Endpoints", func() bool {
		return strings.TrimSpace(k.Run(c, "", nil, "get", "endpointslices", "-l", "kubernetes.io/service-name=external-service", "-o", "name").Stdout) == ""
	})

	// NodePort: answers on the node's address, from the host.
	nodePort := 30000 + int(time.Now().UnixNano()%2700)
	k.Must(t, c, "expose", "rc", "kubia", "--name=kubia-nodeport", "--type=NodePort", "--port=80", "--target-port=8080",
		fmt.Sprintf("--overrides={\"spec\":{\"ports\":[{\"port\":80,\"targetPort\":8080,\"nodePort\":%d}]}}", nodePort))
	node, err := c.Client().CoreV1().Nodes().Get(ctx, framework.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodeIP := node.Status.Addresses[0].Address
	framework.Eventually(t, 20*time.Second, "the node port answering", func() bool {
		body, err := get(fmt.Sprintf("http://%s:%d/", nodeIP, nodePort))
		return err == nil && strings.HasPrefix(body, "hello from kubia-")
	})

	// LoadBalancer: the ingress IPs are the nodes' addresses, and the
	// service port answers there.
	lbPort := nodePort + 1
	k.Must(t, c, "expose", "rc", "kubia", "--name=kubia-lb", "--type=LoadBalancer", fmt.Sprintf("--port=%d", lbPort), "--target-port=8080")
	framework.Eventually(t, 20*time.Second, "the load balancer answering on the node address", func() bool {
		lb, err := c.Client().CoreV1().Services("default").Get(ctx, "kubia-lb", metav1.GetOptions{})
		if err != nil || len(lb.Status.LoadBalancer.Ingress) == 0 {
			return false
		}
		body, err := get(fmt.Sprintf("http://%s:%d/", lb.Status.LoadBalancer.Ingress[0].IP, lbPort))
		return err == nil && strings.HasPrefix(body, "hello from kubia-")
	})

	// Hairpin: a pod reaches itself through its own Service (not named
	// like the pod: /etc/hosts maps the pod's own name to its address).
	k.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata:
  name: hairpin
  labels:
    app: hairpin
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: `+testServer+`
    imagePullPolicy: Never
  - name: client
    image: `+busybox+`
    command: ["sh", "-c", "for i in $(seq 100); do wget -qO- http://myself/ && break; sleep 0.2; done; sleep 3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: myself
spec:
  selector:
    app: hairpin
  ports:
  - port: 80
    targetPort: 8080
`, "create", "-f", "-")
	framework.Eventually(t, 60*time.Second, "the hairpin pod answering itself through its service", func() bool {
		return strings.Contains(k.Run(c, "", nil, "logs", "hairpin", "-c", "client").Stdout, "hello from hairpin")
	})

	// Headless: every pod's address; SRV for the named port.
	k.MustIn(t, c, `apiVersion: v1
kind: Service
metadata:
  name: kubia-headless
spec:
  clusterIP: None
  selector:
    app: kubia
  ports:
  - name: http
    port: 80
    targetPort: 8080
`, "create", "-f", "-")
	pods, err := c.Client().CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=kubia"})
	if err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 20*time.Second, "kubia-headless endpoints", func() bool {
		return strings.Count(k.Run(c, "", nil, "get", "endpoints", "kubia-headless").Stdout, ":8080") == 3
	})
	out = sh("nslookup kubia-headless; nslookup -type=SRV _https._tcp.kubia-two.default.svc.cluster.local; true")
	for _, p := range pods.Items {
		if !strings.Contains(out, p.Status.PodIP) {
			t.Errorf("nslookup kubia-headless lacks %s:\n%s", p.Status.PodIP, out)
		}
	}
	if !strings.Contains(out, "kubia-two.default.svc.cluster.local") || !strings.Contains(out, " 443 ") {
		t.Errorf("SRV lookup:\n%s", out)
	}

	// Another namespace: resolves with its namespace suffix.
	k.Must(t, c, "create", "namespace", "other")
	k.Must(t, c, "create", "service", "clusterip", "elsewhere", "-n", "other", "--tcp=80:8080")
	other, err := c.Client().CoreV1().Services("other").Get(ctx, "elsewhere", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// An ExternalName Service is a CNAME (here to a name in the cluster).
	k.Must(t, c, "create", "service", "externalname", "alias", "--external-name", "kubia.default.svc.cluster.local")
	out = sh("nslookup elsewhere.other.svc.cluster.local; wget -O- http://elsewhere.other/ 2>&1; nslookup elsewhere >/dev/null 2>&1 || echo NOT-IN-DEFAULT; " +
		"nslookup -type=CNAME alias.default.svc.cluster.local; wget -qO- http://alias/")
	// (busybox's nslookup applies the search path to dotless names only;
	// wget resolves as applications do.) The ExternalName alias answers
	// with its CNAME and, through it, kubia's address.
	if !strings.Contains(out, "Address: "+other.Spec.ClusterIP) || !strings.Contains(out, "Connecting to elsewhere.other ("+other.Spec.ClusterIP+":80)") ||
		!strings.Contains(out, "refused") || !strings.Contains(out, "NOT-IN-DEFAULT") ||
		!strings.Contains(out, "canonical name = kubia.default.svc.cluster.local") || !strings.Contains(out, "hello from kubia-") {
		t.Errorf("cross-namespace and ExternalName lookups (want %s):\n%s", other.Spec.ClusterIP, out)
	}
	// It has no endpoints: connections are refused at once, not left
	// to time out.
	start := time.Now()
	_, err = get("http://" + other.Spec.ClusterIP + "/")
	if err == nil || !strings.Contains(err.Error(), "refused") || time.Since(start) > 2*time.Second {
		t.Errorf("a service without endpoints: %v after %v, want connection refused at once", err, time.Since(start))
	}

	// The cluster DNS answers the host too, at the DNS service's address.
	m := new(dns.Msg)
	m.SetQuestion("kubia.default.svc.cluster.local.", dns.TypeA)
	r, err := dns.Exchange(m, net.JoinHostPort(dnsServiceIP(t, c), "53"))
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != ip {
		t.Errorf("DNS from the host: %v %v", r, err)
	}
}

// dnsServiceIP is the kube-dns Service's cluster IP.
func dnsServiceIP(t *testing.T, c *framework.Cluster) string {
	t.Helper()
	svc, err := c.Client().CoreV1().Services("kube-system").Get(context.Background(), "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// get fetches url on a new connection.
func get(url string) (string, error) {
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPodLeavesServiceTrafficWithinASecond relabels a pod out of a
// Service while clients on the node keep connecting, and checks that the
// pod answers nothing that was sent more than a second after the change.
func TestPodLeavesServiceTrafficWithinASecond(t *testing.T) {
	c := nodeCluster(t)
	importTestServer(t, c)
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx := context.Background()
	// Bare pods: nothing replaces the relabelled one (a replacement
	// without a readiness probe would refuse connections while starting).
	for i := range 3 {
		k.Must(t, c, "run", fmt.Sprintf("kubia-%d", i), "--image="+testServer, "--image-pull-policy=Never", "--labels=app=kubia", "--port=8080")
	}
	k.Must(t, c, "create", "service", "clusterip", "kubia", "--tcp=80:8080")
	framework.Eventually(t, 60*time.Second, "3 endpoints of kubia", func() bool {
		ep, err := c.Client().CoreV1().Endpoints("default").Get(ctx, "kubia", metav1.GetOptions{})
		return err == nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 3
	})
	svc, err := c.Client().CoreV1().Services("default").Get(ctx, "kubia", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 10*time.Second, "every pod answering through the service", func() bool {
		seen := map[string]bool{}
		for range 30 {
			if body, err := get("http://" + svc.Spec.ClusterIP + "/hostname"); err == nil {
				seen[body] = true
			}
		}
		return len(seen) == 3
	})
	victim := "kubia-0"

	type hit struct {
		sent time.Time
		pod  string
	}
	var mu sync.Mutex
	var hits []hit
	var failures int
	stop := make(chan struct{})
	started := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent := time.Now()
				body, err := get("http://" + svc.Spec.ClusterIP + "/hostname")
				mu.Lock()
				if err != nil {
					failures++
					if failures <= 5 {
						t.Logf("request sent %v after start: %v", sent.Sub(started), err)
					}
				} else {
					hits = append(hits, hit{sent, body})
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	changed := time.Now()
	k.Must(t, c, "label", "pod", victim, "app=removed", "--overwrite")
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	var before, after, lastVictim int
	var last time.Time
	for _, h := range hits {
		if h.sent.Before(changed) {
			before++
			continue
		}
		after++
		if h.pod == victim && h.sent.After(last) {
			last = h.sent
			lastVictim++
		}
	}
	t.Logf("%d requests before the label change, %d after, %d failed; the relabelled pod answered a request sent %v after the change",
		before, after, failures, last.Sub(changed))
	if failures > 0 {
		t.Errorf("%d requests failed while the pod left the service", failures)
	}
	if before == 0 || after == 0 {
		t.Fatal("no traffic measured")
	}
	if lastVictim > 0 && last.Sub(changed) > time.Second {
		t.Errorf("the relabelled pod still received a request sent %v after the label change", last.Sub(changed))
	}
}

// nftTables lists the machine's nftables tables.
func nftTables(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	return string(out)
}

// proxyTable is the node's service proxy table.
func proxyTable(c *framework.Cluster) string {
	return agent.ProxyTable(filepath.Join(c.DataDir, "agent", "runtime"))
}
