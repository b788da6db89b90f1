package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestNamespaceDeletionEmptiesIt deletes a namespace with objects of
// several kinds: it is Terminating while an object with a finalizer holds
// it (with upstream's condition), then everything and the namespace go.
func TestNamespaceDeletionEmptiesIt(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[len(framework.Kubectls(t))-1]
	k.Must(t, c, "create", "namespace", "doomed")
	k.Must(t, c, "-n", "doomed", "create", "configmap", "settings", "--from-literal=a=b")
	k.Must(t, c, "-n", "doomed", "create", "secret", "generic", "token", "--from-literal=t=s")
	k.Must(t, c, "-n", "doomed", "create", "service", "clusterip", "web", "--tcp=80:8080")
	k.Must(t, c, "-n", "doomed", "create", "deployment", "web", "--image=registry.local/none:v1")
	k.MustIn(t, c, `apiVersion: v1
kind: ConfigMap
metadata:
  name: held
  namespace: doomed
  finalizers: ["example.com/hold"]
`, "create", "-f", "-")
	k.MustIn(t, c, `apiVersion: v1
kind: Pod
metadata:
  name: holder
  namespace: doomed
  finalizers: ["example.com/hold"]
spec:
  containers: [{name: c, image: registry.local/none:v1}]
`, "create", "-f", "-")
	k.Must(t, c, "delete", "namespace", "doomed", "--wait=false")
	cs := c.Client()
	ctx := context.Background()
	// Pods go first: while one remains, nothing else is deleted, and the
	// namespace carries upstream's five conditions.
	framework.Eventually(t, 15*time.Second, "pod terminating, held by its finalizer, with the conditions", func() bool {
		p, err := cs.CoreV1().Pods("doomed").Get(ctx, "holder", metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp == nil {
			return false
		}
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		return err == nil && len(ns.Status.Conditions) == 5
	})
	time.Sleep(3 * time.Second) // a namespace controller pass or more
	if out := k.Must(t, c, "-n", "doomed", "get", "secrets,services,configmaps", "-o", "name"); !strings.Contains(out, "secret/token") || !strings.Contains(out, "configmap/settings") {
		t.Fatalf("objects deleted before the namespace's pods:\n%s", out)
	}
	k.Must(t, c, "-n", "doomed", "patch", "pod", "holder", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	framework.Eventually(t, 15*time.Second, "only the held configmap left, with the condition", func() bool {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		if err != nil || ns.Status.Phase != corev1.NamespaceTerminating {
			return false
		}
		for _, cond := range ns.Status.Conditions {
			if cond.Type == corev1.NamespaceContentRemaining && strings.Contains(cond.Message, "configmaps has 1 resource instances") {
				return true
			}
		}
		return false
	})
	for _, res := range []string{"secrets", "services", "deployments"} {
		if out := k.Must(t, c, "-n", "doomed", "get", res, "-o", "name"); strings.TrimSpace(out) != "" {
			t.Fatalf("%s left in a terminating namespace:\n%s", res, out)
		}
	}
	k.Must(t, c, "-n", "doomed", "patch", "configmap", "held", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	framework.Eventually(t, 15*time.Second, "namespace gone", func() bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		return err != nil && strings.Contains(err.Error(), "not found")
	})
	// kubectl's own wait works too.
	k.Must(t, c, "create", "namespace", "brief")
	k.Must(t, c, "-n", "brief", "create", "configmap", "x")
	k.Must(t, c, "delete", "namespace", "brief", "--timeout=20s")
}

// TestNamespaceDefaults checks what every namespace gets from the
// controllers: the default ServiceAccount and the kube-root-ca.crt
// ConfigMap with the cluster CA, both restored when removed or changed.
func TestNamespaceDefaults(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	k := framework.Kubectls(t)[0]
	cs := c.Client()
	ctx := context.Background()
	k.Must(t, c, "create", "namespace", "team")
	ca := string(c.RESTConfig().CAData)
	framework.Eventually(t, 10*time.Second, "kube-root-ca.crt published", func() bool {
		cm, err := cs.CoreV1().ConfigMaps("team").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] == ca
	})
	k.Must(t, c, "-n", "team", "patch", "configmap", "kube-root-ca.crt", "--type=merge", "-p", `{"data":{"ca.crt":"tampered"}}`)
	framework.Eventually(t, 10*time.Second, "kube-root-ca.crt restored", func() bool {
		cm, err := cs.CoreV1().ConfigMaps("team").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] == ca
	})
	k.Must(t, c, "-n", "team", "delete", "serviceaccount", "default")
	framework.Eventually(t, 10*time.Second, "default service account recreated", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("team").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	if out := k.Must(t, c, "get", "configmaps", "-A", "--field-selector", "metadata.name=kube-root-ca.crt", "-o", "name"); strings.Count(out, "kube-root-ca.crt") < 4 {
		t.Fatalf("kube-root-ca.crt in every namespace (default, kube-system, kube-public, kube-node-lease, team):\n%s", out)
	}
}
