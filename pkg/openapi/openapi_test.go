package openapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/apps/deployment"
	"github.com/skiff/skiff/pkg/registry/configmap"
	"github.com/skiff/skiff/pkg/registry/pod"
)

func resources() []*registry.Resource {
	return []*registry.Resource{pod.NewResource(), configmap.NewResource(), deployment.NewResource()}
}

func TestV2SchemasAndPaths(t *testing.T) {
	sw := BuildV2(resources(), "v1.33.0")
	podSpec, ok := sw.Definitions["io.k8s.api.core.v1.PodSpec"]
	if !ok {
		t.Fatal("no PodSpec definition")
	}
	containers := podSpec.Properties["containers"]
	if containers.Extensions["x-kubernetes-patch-merge-key"] != "name" || containers.Extensions["x-kubernetes-patch-strategy"] != "merge" {
		t.Fatalf("containers patch metadata: %v", containers.Extensions)
	}
	if !slices.Contains(podSpec.Required, "containers") {
		t.Fatalf("PodSpec required = %v", podSpec.Required)
	}
	if c := sw.Definitions["io.k8s.api.core.v1.Container"]; !slices.Contains(c.Required, "name") || slices.Contains(c.Required, "image") {
		t.Fatalf("Container required = %v", c.Required)
	}
	if q := sw.Definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"]; len(q.Type) != 1 || q.Type[0] != "string" {
		t.Fatalf("Quantity = %+v", q)
	}
	gvk, _ := json.Marshal(sw.Definitions["io.k8s.api.apps.v1.Deployment"].Extensions["x-kubernetes-group-version-kind"])
	if !strings.Contains(string(gvk), `"group":"apps"`) || !strings.Contains(string(gvk), `"kind":"Deployment"`) {
		t.Fatalf("Deployment GVK extension: %s", gvk)
	}
	patch := sw.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].Patch
	if patch == nil {
		t.Fatal("no deployment PATCH operation")
	}
	found := false
	for _, p := range patch.Parameters {
		found = found || (p.Name == "fieldValidation" && p.In == "query")
	}
	if !found || !slices.Contains(patch.Consumes, "application/strategic-merge-patch+json") {
		t.Fatalf("PATCH lacks fieldValidation or strategic merge patch: %+v", patch)
	}
	if sw.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"].Put == nil {
		t.Fatal("no scale subresource path")
	}
}

func TestV3PerGroupVersion(t *testing.T) {
	doc := BuildV3([]*registry.Resource{deployment.NewResource()}, "v1.33.0")
	if doc.Components.Schemas["io.k8s.api.apps.v1.Deployment"] == nil || doc.Components.Schemas["io.k8s.api.core.v1.Container"] == nil {
		t.Fatal("v3 document lacks the kind or what it refers to")
	}
	if doc.Components.Schemas["io.k8s.api.core.v1.ConfigMap"] != nil {
		t.Fatal("v3 document of apps/v1 contains another group's kinds")
	}
	q := doc.Components.Schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
	if q == nil || q.Extensions["x-kubernetes-int-or-string"] != true {
		t.Fatalf("IntOrString in v3: %+v", q)
	}
	patch := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].Patch
	if _, ok := patch.RequestBody.Content["application/strategic-merge-patch+json"]; !ok {
		t.Fatal("v3 PATCH lacks strategic merge patch")
	}
}
