package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestEventsExpireAfterTTL runs a server with a short event TTL
// (`--kube-apiserver-arg event-ttl=5s`): an event created with kubectl is
// listed, then etcd deletes it when its lease expires, which
// `kubectl wait --for=delete` (a watch) sees. The TTL leaves room for two
// kubectl runs on a loaded machine before the event goes.
func TestEventsExpireAfterTTL(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{ExtraArgs: []string{"--kube-apiserver-arg", "event-ttl=5s"}})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	// The lease is granted during the create, so after this.
	beforeCreate := time.Now()
	k.MustIn(t, c, `apiVersion: v1
kind: Event
metadata:
  name: short-lived
  namespace: default
involvedObject:
  kind: Namespace
  name: default
reason: Testing
message: gone in a few seconds
type: Normal
count: 1
source:
  component: e2e
`, "create", "-f", "-")
	if out := k.Must(t, c, "get", "events", "-o", "name"); !strings.Contains(out, "event/short-lived") {
		t.Fatalf("created event not listed:\n%s", out)
	}
	k.Must(t, c, "wait", "--for=delete", "event/short-lived", "--timeout=15s")
	if age := time.Since(beforeCreate); age < 5*time.Second {
		t.Fatalf("event gone after %v, before its TTL of 5s", age)
	}
	if out := k.Must(t, c, "get", "events", "-o", "name"); strings.Contains(out, "short-lived") {
		t.Fatalf("expired event still listed:\n%s", out)
	}
}
