package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff/skiff/test/e2e/framework"
)

// TestKubectlBasics drives one cluster with every installed kubectl
// version, each in its own namespace, through the everyday commands.
func TestKubectlBasics(t *testing.T) {
	c := framework.StartCluster(t, framework.Options{})
	for _, k := range framework.Kubectls(t) {
		k := k
		t.Run(k.Name, func(t *testing.T) {
			ns := "kc-" + strings.ReplaceAll(k.Name, ".", "-")
			k.Must(t, c, "create", "namespace", ns)
			kubectlBasics(t, c, k, ns)
		})
	}
}

func podManifest(name, ns string, labels string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels:
%s
spec:
  containers:
  - name: main
    image: registry.local/kubia:v1
    ports:
    - containerPort: 8080
`, name, ns, labels)
}

func kubectlBasics(t *testing.T, c *framework.Cluster, k framework.Kubectl, ns string) {
	manifest := podManifest("alpha", ns, "    app: web\n    tier: front")

	// create -f with default (strict) validation.
	out := k.MustIn(t, c, manifest, "create", "-f", "-")
	if !strings.Contains(out, "pod/alpha created") {
		t.Fatalf("create: %q", out)
	}
	r := k.Run(c, manifest, nil, "create", "-f", "-")
	if r.Err == nil || !strings.Contains(r.Stderr, "AlreadyExists") && !strings.Contains(r.Stderr, "already exists") {
		t.Fatalf("second create should fail with AlreadyExists: %+v", r)
	}
	bad := strings.Replace(podManifest("bad", ns, "    app: bad"), "  - name: main\n", "  - name: main\n    bogus: 1\n", 1)
	r = k.Run(c, bad, nil, "create", "-f", "-")
	if r.Err == nil || !strings.Contains(r.Stderr, `unknown field "spec.containers[0].bogus"`) {
		t.Fatalf("create with unknown field should fail strict validation: %+v", r)
	}
	invalid := strings.Replace(podManifest("invalid", ns, "    app: bad"), "containerPort: 8080", "containerPort: 70000", 1)
	r = k.Run(c, invalid, nil, "create", "-f", "-")
	if r.Err == nil || !strings.Contains(r.Stderr, `spec.containers[0].ports[0].containerPort: Invalid value: 70000`) {
		t.Fatalf("invalid pod should be a 422 naming the field: %+v", r)
	}

	// apply twice is idempotent; a change is applied.
	applied := podManifest("beta", ns, "    app: web")
	if out := k.MustIn(t, c, applied, "apply", "-f", "-"); !strings.Contains(out, "pod/beta created") {
		t.Fatalf("first apply: %q", out)
	}
	rv1 := k.Must(t, c, "get", "pod", "beta", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
	if out := k.MustIn(t, c, applied, "apply", "-f", "-"); !strings.Contains(out, "pod/beta unchanged") {
		t.Fatalf("second apply: %q", out)
	}
	if rv2 := k.Must(t, c, "get", "pod", "beta", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}"); rv1 != rv2 {
		t.Fatalf("idempotent apply changed resourceVersion %s -> %s", rv1, rv2)
	}
	changed := strings.Replace(applied, "kubia:v1", "kubia:v2", 1)
	if out := k.MustIn(t, c, changed, "apply", "-f", "-"); !strings.Contains(out, "pod/beta configured") {
		t.Fatalf("changed apply: %q", out)
	}
	if got := k.Must(t, c, "get", "pod", "beta", "-n", ns, "-o", "jsonpath={.spec.containers[0].image}"); got != "registry.local/kubia:v2" {
		t.Fatalf("after apply image = %q", got)
	}

	// get: the columns kubectl users know, --show-labels, -L, -o wide.
	out = k.Must(t, c, "get", "pods", "-n", ns)
	if !regexp.MustCompile(`NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE`).MatchString(out) || !regexp.MustCompile(`alpha\s+0/1\s+Pending\s+0\s+\S+`).MatchString(out) {
		t.Fatalf("get pods:\n%s", out)
	}
	out = k.Must(t, c, "get", "po", "-n", ns, "-o", "wide")
	if !regexp.MustCompile(`IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES`).MatchString(out) {
		t.Fatalf("-o wide:\n%s", out)
	}
	out = k.Must(t, c, "get", "po", "-n", ns, "--show-labels")
	if !regexp.MustCompile(`alpha\s+0/1\s+Pending\s+0\s+\S+\s+app=web,tier=front`).MatchString(out) {
		t.Fatalf("--show-labels:\n%s", out)
	}
	out = k.Must(t, c, "get", "po", "-n", ns, "-L", "app,tier")
	if !strings.Contains(out, "APP") || !regexp.MustCompile(`alpha\s+0/1\s+Pending\s+0\s+\S+\s+web\s+front`).MatchString(out) {
		t.Fatalf("-L app,tier:\n%s", out)
	}

	// label and annotate.
	k.Must(t, c, "label", "po", "beta", "-n", ns, "env=prod")
	r = k.Run(c, "", nil, "label", "po", "beta", "-n", ns, "env=dev")
	if r.Err == nil || !strings.Contains(r.Stderr, "already has a value") {
		t.Fatalf("label without --overwrite should fail: %+v", r)
	}
	k.Must(t, c, "label", "po", "beta", "-n", ns, "env=dev", "--overwrite")
	k.Must(t, c, "label", "po", "alpha", "-n", ns, "env=prod")
	k.MustIn(t, c, podManifest("gamma", ns, "    other: x"), "create", "-f", "-")
	k.Must(t, c, "annotate", "po", "gamma", "-n", ns, "note=hello")
	if got := k.Must(t, c, "get", "po", "gamma", "-n", ns, "-o", "jsonpath={.metadata.annotations.note}"); got != "hello" {
		t.Fatalf("annotate: %q", got)
	}

	// Every selector form.
	selectors := map[string][]string{
		"app=web":                {"alpha", "beta"},
		"env!=prod":              {"beta", "gamma"},
		"env in (dev,prod)":      {"alpha", "beta"},
		"env notin (dev)":        {"alpha", "gamma"},
		"env":                    {"alpha", "beta"},
		"!env":                   {"gamma"},
		"app=web,env=dev":        {"beta"},
		"app,env in (prod),tier": {"alpha"},
	}
	for sel, want := range selectors {
		got := strings.Fields(k.Must(t, c, "get", "po", "-n", ns, "-l", sel, "-o", "jsonpath={.items[*].metadata.name}"))
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("-l %q = %v, want %v", sel, got, want)
		}
	}

	// describe, and explain from the OpenAPI documents.
	out = k.Must(t, c, "describe", "pod", "alpha", "-n", ns)
	for _, want := range []string{"Name:", "alpha", "Status:", "Pending", "registry.local/kubia:v1", "QoS Class:", "BestEffort"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe lacks %q:\n%s", want, out)
		}
	}
	out = k.Must(t, c, "explain", "pods.spec.containers")
	if !strings.Contains(out, "FIELD: containers") && !strings.Contains(out, "RESOURCE: containers") || !strings.Contains(out, "image") {
		t.Fatalf("explain pods.spec.containers:\n%s", out)
	}

	// edit with an editor that rewrites the image.
	r = k.Run(c, "", []string{"KUBE_EDITOR=sed -i s/kubia:v1/kubia:edited/", "EDITOR="}, "edit", "pod", "alpha", "-n", ns)
	if r.Err != nil || !strings.Contains(r.Stdout, "pod/alpha edited") {
		t.Fatalf("edit: %+v", r)
	}
	if got := k.Must(t, c, "get", "pod", "alpha", "-n", ns, "-o", "jsonpath={.spec.containers[0].image}"); got != "registry.local/kubia:edited" {
		t.Fatalf("after edit image = %q", got)
	}

	// scale a deployment and a replication controller.
	k.Must(t, c, "create", "deployment", "web", "-n", ns, "--image=registry.local/kubia:v1")
	if out := k.Must(t, c, "scale", "deployment", "web", "-n", ns, "--replicas=3"); !strings.Contains(out, "deployment.apps/web scaled") {
		t.Fatalf("scale: %q", out)
	}
	if got := k.Must(t, c, "get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Fatalf("replicas after scale = %q", got)
	}
	out = k.Must(t, c, "get", "deploy", "-n", ns)
	// The deployment controller may already have made pods (never ready
	// here: there is no node).
	if !regexp.MustCompile(`web\s+0/3\s+[0-3]\s+0\s+\S+`).MatchString(out) {
		t.Fatalf("get deploy:\n%s", out)
	}

	// get -w sees a create, an update and a delete.
	watch := k.Start(t, c, "get", "pods", "-n", ns, "-w", "--output-watch-events")
	// The watch has begun once the initial list is out.
	framework.Eventually(t, 20*time.Second, "watch started", func() bool { return strings.Contains(watch.Output().Stdout, "alpha") })
	k.MustIn(t, c, podManifest("watched", ns, "    app: w"), "create", "-f", "-")
	k.Must(t, c, "label", "po", "watched", "-n", ns, "seen=yes")
	k.Must(t, c, "delete", "po", "watched", "-n", ns)
	framework.Eventually(t, 10*time.Second, "watch events", func() bool {
		out := watch.Output().Stdout
		return regexp.MustCompile(`ADDED\s+watched`).MatchString(out) && regexp.MustCompile(`MODIFIED\s+watched`).MatchString(out) && regexp.MustCompile(`DELETED\s+watched`).MatchString(out)
	})

	// --all-namespaces and -n.
	out = k.Must(t, c, "get", "pods", "--all-namespaces")
	if !strings.Contains(out, "NAMESPACE") || !regexp.MustCompile(ns+`\s+alpha`).MatchString(out) {
		t.Fatalf("--all-namespaces:\n%s", out)
	}
	if out := k.Must(t, c, "get", "pods", "-n", "kube-system", "-o", "name"); strings.Contains(out, "alpha") {
		t.Fatalf("-n kube-system shows another namespace's object:\n%s", out)
	}

	// api-resources lists what is served.
	out = k.Must(t, c, "api-resources")
	for _, want := range []string{"pods", "deployments", "services", "configmaps", "namespaces", "events", "leases", "cronjobs", "endpointslices", "storageclasses"} {
		if !strings.Contains(out, want) {
			t.Fatalf("api-resources lacks %s:\n%s", want, out)
		}
	}

	// delete: pods are not scheduled, so they go at once.
	if out := k.Must(t, c, "delete", "pod", "alpha", "beta", "-n", ns); !strings.Contains(out, `pod "alpha" deleted`) {
		t.Fatalf("delete: %q", out)
	}
	r = k.Run(c, "", nil, "get", "pod", "alpha", "-n", ns)
	if r.Err == nil || !strings.Contains(r.Stderr, `pods "alpha" not found`) {
		t.Fatalf("get after delete: %+v", r)
	}
}
