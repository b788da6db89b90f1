package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestEndpointsFollowPods fills a Service's Endpoints and EndpointSlices
// from its pods as kubectl shows them: pods on simulated nodes get IPs
// and readiness from stand-in kubelets; a pod relabelled out of the
// selector leaves them.
func TestEndpointsFollowPods(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	framework.CreateSimulatedNodes(t, c.Client(), "sim", 2, nil)
	framework.RunStandInKubelets(ctx, c.Client())
	k.MustIn(t, c, replicaSetYAML("ReplicaSet", "kubia", 3), "create", "-f", "-")
	k.MustIn(t, c, `apiVersion: v1
kind: Service
metadata:
  name: kubia
spec:
  selector:
    app: kubia
  ports:
  - name: http
    port: 80
    targetPort: 8080
`, "create", "-f", "-")
	ipPort := regexp.MustCompile(`10\.244\.\d+\.\d+:8080`)
	framework.Eventually(t, 30*time.Second, "three endpoints", func() bool {
		return len(ipPort.FindAllString(k.Run(c, "", nil, "get", "endpoints", "kubia").Stdout, -1)) == 3
	})
	out := k.Must(t, c, "get", "endpointslices", "-l", "kubernetes.io/service-name=kubia")
	if !regexp.MustCompile(`kubia-\S+\s+IPv4\s+8080\s+10\.244\.`).MatchString(out) {
		t.Fatalf("get endpointslices:\n%s", out)
	}
	desc := k.Must(t, c, "describe", "service", "kubia")
	if !regexp.MustCompile(`Endpoints:\s+10\.244\.`).MatchString(desc) {
		t.Fatalf("describe service:\n%s", desc)
	}
	// A pod relabelled out of the selector leaves (and the ReplicaSet's
	// replacement comes in).
	victim := podsLabelled(t, c, "kubia")[0]
	if victim.Status.PodIP == "" {
		t.Fatalf("pod %s in the endpoints has no IP", victim.Name)
	}
	k.Must(t, c, "label", "pod", victim.Name, "app=debug", "--overwrite")
	framework.Eventually(t, 30*time.Second, "relabelled pod out of the endpoints", func() bool {
		ep := k.Run(c, "", nil, "get", "endpoints", "kubia", "-o", "jsonpath={.subsets[*].addresses[*].ip}").Stdout
		return !strings.Contains(" "+ep+" ", " "+victim.Status.PodIP+" ") && len(strings.Fields(ep)) == 3
	})
}
