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

func kubectlBasics(t *testing.T, c *framework.Cluster, k framework.Kubectl, ns string) {
	manifest := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: alpha
  namespace: %s
  labels:
    app: web
    tier: front
data:
  color: blue
`, ns)

	// create -f with default (strict) validation.
	out := k.MustIn(t, c, manifest, "create", "-f", "-")
	if !strings.Contains(out, "configmap/alpha created") {
		t.Fatalf("create: %q", out)
	}
	r := k.Run(c, manifest, nil, "create", "-f", "-")
	if r.Err == nil || !strings.Contains(r.Stderr, "AlreadyExists") && !strings.Contains(r.Stderr, "already exists") {
		t.Fatalf("second create should fail with AlreadyExists: %+v", r)
	}
	bad := strings.Replace(manifest, "\ndata:", "\nbogus: 1\ndata:", 1)
	bad = strings.Replace(bad, "name: alpha", "name: bad", 1)
	r = k.Run(c, bad, nil, "create", "-f", "-")
	if r.Err == nil || !strings.Contains(r.Stderr, `unknown field "bogus"`) {
		t.Fatalf("create with unknown field should fail strict validation: %+v", r)
	}

	// apply twice is idempotent; a change is applied.
	applied := strings.Replace(manifest, "name: alpha", "name: beta", 1)
	if out := k.MustIn(t, c, applied, "apply", "-f", "-"); !strings.Contains(out, "configmap/beta created") {
		t.Fatalf("first apply: %q", out)
	}
	rv1 := k.Must(t, c, "get", "cm", "beta", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
	if out := k.MustIn(t, c, applied, "apply", "-f", "-"); !strings.Contains(out, "configmap/beta unchanged") {
		t.Fatalf("second apply: %q", out)
	}
	if rv2 := k.Must(t, c, "get", "cm", "beta", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}"); rv1 != rv2 {
		t.Fatalf("idempotent apply changed resourceVersion %s -> %s", rv1, rv2)
	}
	changed := strings.Replace(applied, "color: blue", "color: green", 1)
	if out := k.MustIn(t, c, changed, "apply", "-f", "-"); !strings.Contains(out, "configmap/beta configured") {
		t.Fatalf("changed apply: %q", out)
	}
	if got := k.Must(t, c, "get", "cm", "beta", "-n", ns, "-o", "jsonpath={.data.color}"); got != "green" {
		t.Fatalf("after apply color = %q", got)
	}

	// get, -o wide, --show-labels, -L.
	out = k.Must(t, c, "get", "cm", "-n", ns, "--show-labels")
	if !regexp.MustCompile(`alpha\s+1\s+\S+\s+app=web,tier=front`).MatchString(out) {
		t.Fatalf("--show-labels:\n%s", out)
	}
	out = k.Must(t, c, "get", "cm", "-n", ns, "-L", "app,tier")
	if !strings.Contains(out, "APP") || !regexp.MustCompile(`alpha\s+1\s+\S+\s+web\s+front`).MatchString(out) {
		t.Fatalf("-L app,tier:\n%s", out)
	}

	// label and annotate.
	k.Must(t, c, "label", "cm", "beta", "-n", ns, "env=prod")
	r = k.Run(c, "", nil, "label", "cm", "beta", "-n", ns, "env=dev")
	if r.Err == nil || !strings.Contains(r.Stderr, "already has a value") {
		t.Fatalf("label without --overwrite should fail: %+v", r)
	}
	k.Must(t, c, "label", "cm", "beta", "-n", ns, "env=dev", "--overwrite")
	k.Must(t, c, "label", "cm", "alpha", "-n", ns, "env=prod")
	k.Must(t, c, "create", "cm", "gamma", "-n", ns)
	k.Must(t, c, "annotate", "cm", "gamma", "-n", ns, "note=hello")
	if got := k.Must(t, c, "get", "cm", "gamma", "-n", ns, "-o", "jsonpath={.metadata.annotations.note}"); got != "hello" {
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
		got := strings.Fields(k.Must(t, c, "get", "cm", "-n", ns, "-l", sel, "-o", "jsonpath={.items[*].metadata.name}"))
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("-l %q = %v, want %v", sel, got, want)
		}
	}

	// describe.
	out = k.Must(t, c, "describe", "cm", "alpha", "-n", ns)
	if !strings.Contains(out, "Name:") || !strings.Contains(out, "alpha") || !strings.Contains(out, "color") {
		t.Fatalf("describe:\n%s", out)
	}

	// edit with an editor that rewrites the value.
	r = k.Run(c, "", []string{"KUBE_EDITOR=sed -i s/color:.*/color:\\ edited/", "EDITOR="}, "edit", "cm", "alpha", "-n", ns)
	if r.Err != nil || !strings.Contains(r.Stdout, "configmap/alpha edited") {
		t.Fatalf("edit: %+v", r)
	}
	if got := k.Must(t, c, "get", "cm", "alpha", "-n", ns, "-o", "jsonpath={.data.color}"); got != "edited" {
		t.Fatalf("after edit color = %q", got)
	}

	// get -w sees a create, an update and a delete.
	stop := k.Start(t, c, "get", "cm", "-n", ns, "-w", "--output-watch-events")
	time.Sleep(300 * time.Millisecond)
	k.Must(t, c, "create", "cm", "watched", "-n", ns)
	k.Must(t, c, "label", "cm", "watched", "-n", ns, "seen=yes")
	k.Must(t, c, "delete", "cm", "watched", "-n", ns)
	framework.Eventually(t, 10*time.Second, "watch events", func() bool {
		out := stop().Stdout
		return regexp.MustCompile(`ADDED\s+watched`).MatchString(out) && regexp.MustCompile(`MODIFIED\s+watched`).MatchString(out) && regexp.MustCompile(`DELETED\s+watched`).MatchString(out)
	})

	// --all-namespaces and -n.
	out = k.Must(t, c, "get", "cm", "--all-namespaces")
	if !strings.Contains(out, "NAMESPACE") || !regexp.MustCompile(ns+`\s+alpha`).MatchString(out) {
		t.Fatalf("--all-namespaces:\n%s", out)
	}
	if out := k.Must(t, c, "get", "cm", "-n", "kube-system", "-o", "name"); strings.Contains(out, "alpha") {
		t.Fatalf("-n kube-system shows another namespace's object:\n%s", out)
	}

	// api-resources lists what is served.
	out = k.Must(t, c, "api-resources")
	for _, want := range []string{"configmaps", "namespaces"} {
		if !strings.Contains(out, want) {
			t.Fatalf("api-resources lacks %s:\n%s", want, out)
		}
	}

	// delete.
	if out := k.Must(t, c, "delete", "cm", "alpha", "beta", "-n", ns); !strings.Contains(out, `configmap "alpha" deleted`) {
		t.Fatalf("delete: %q", out)
	}
	r = k.Run(c, "", nil, "get", "cm", "alpha", "-n", ns)
	if r.Err == nil || !strings.Contains(r.Stderr, `configmaps "alpha" not found`) {
		t.Fatalf("get after delete: %+v", r)
	}
}
