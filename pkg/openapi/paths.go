package openapi

import (
	"reflect"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff/skiff/pkg/registry"
)

// operation is one verb on one path, independent of the OpenAPI version.
type operation struct {
	method   string // get, put, post, patch, delete
	id       string
	action   string // x-kubernetes-action
	desc     string
	body     string // definition name of the request body, "" for none
	response string // definition name of the 200/201 response
	query    []param
	gvk      metav1.GroupVersionKind
}

type param struct {
	name, typ, desc string
}

var (
	pretty          = param{"pretty", "string", "If 'true', then the output is pretty printed."}
	dryRun          = param{"dryRun", "string", "When present, indicates that modifications should not be persisted. Valid value: All."}
	fieldManager    = param{"fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes."}
	fieldValidation = param{"fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default), Strict."}
	force           = param{"force", "boolean", "Force is going to \"force\" Apply requests."}
	listParams      = []param{
		{"allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."},
		{"continue", "string", "The continue option should be set when retrieving more results from the server."},
		{"fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."},
		{"labelSelector", "string", "A selector to restrict the list of returned objects by their labels."},
		{"limit", "integer", "limit is a maximum number of responses to return for a list call."},
		{"resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."},
		{"resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."},
		{"sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."},
		{"timeoutSeconds", "integer", "Timeout for the list/watch call."},
		{"watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."},
	}
	deleteParams = []param{
		{"gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."},
		{"propagationPolicy", "string", "Whether and how garbage collection will be performed: Orphan, Background or Foreground."},
	}
)

// patchTypes are the patch bodies skiff accepts; strategic merge patch
// tells kubectl apply to compute strategic patches.
var patchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"}

// groupName is the operation-id form of a group: "" -> Core,
// "events.k8s.io" -> Events, "apps" -> Apps.
func groupName(group string) string {
	if group == "" {
		return "Core"
	}
	g := strings.Split(group, ".")[0]
	return strings.ToUpper(g[:1]) + g[1:]
}

// resourcePaths returns the path of each operation on res.
func resourcePaths(defs *definitions, res *registry.Resource) map[string][]operation {
	gvk := res.GroupVersionKind()
	kindDef := defs.Define(reflect.TypeOf(res.New()))
	listDef := defs.Define(reflect.TypeOf(res.NewList()))
	statusDef := defs.Define(reflect.TypeOf(metav1.Status{}))
	deleteDef := defs.Define(reflect.TypeOf(metav1.DeleteOptions{}))
	defs.Define(reflect.TypeOf(metav1.Patch{}))
	defs.Define(reflect.TypeOf(metav1.WatchEvent{}))
	opGVK := metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
	base := "/apis/" + res.Group + "/" + res.Version
	if res.Group == "" {
		base = "/api/" + res.Version
	}
	idBase := groupName(res.Group) + strings.ToUpper(res.Version[:1]) + res.Version[1:]
	scope, coll := "", base+"/"+res.Resource
	if res.Namespaced {
		scope = "Namespaced"
		coll = base + "/namespaces/{namespace}/" + res.Resource
	}
	item := coll + "/{name}"
	writeQuery := []param{pretty, dryRun, fieldManager, fieldValidation}
	paths := map[string][]operation{}
	add := func(path string, verb string, op operation) {
		if res.Serves(verb) {
			op.gvk = opGVK
			paths[path] = append(paths[path], op)
		}
	}
	add(coll, "list", operation{method: "get", id: "list" + idBase + scope + gvk.Kind, action: "list", desc: "list or watch objects of kind " + gvk.Kind, response: listDef, query: append([]param{pretty}, listParams...)})
	add(coll, "create", operation{method: "post", id: "create" + idBase + scope + gvk.Kind, action: "post", desc: "create a " + gvk.Kind, body: kindDef, response: kindDef, query: writeQuery})
	add(coll, "deletecollection", operation{method: "delete", id: "deletecollection" + idBase + scope + gvk.Kind, action: "deletecollection", desc: "delete collection of " + gvk.Kind, body: deleteDef, response: statusDef, query: append(append([]param{pretty, dryRun}, deleteParams...), listParams...)})
	add(item, "get", operation{method: "get", id: "read" + idBase + scope + gvk.Kind, action: "get", desc: "read the specified " + gvk.Kind, response: kindDef, query: []param{pretty}})
	add(item, "update", operation{method: "put", id: "replace" + idBase + scope + gvk.Kind, action: "put", desc: "replace the specified " + gvk.Kind, body: kindDef, response: kindDef, query: writeQuery})
	add(item, "patch", operation{method: "patch", id: "patch" + idBase + scope + gvk.Kind, action: "patch", desc: "partially update the specified " + gvk.Kind, body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: kindDef, query: append(writeQuery, force)})
	add(item, "delete", operation{method: "delete", id: "delete" + idBase + scope + gvk.Kind, action: "delete", desc: "delete a " + gvk.Kind, body: deleteDef, response: statusDef, query: append([]param{pretty, dryRun}, deleteParams...)})
	if res.Namespaced {
		add(base+"/"+res.Resource, "list", operation{method: "get", id: "list" + idBase + gvk.Kind + "ForAllNamespaces", action: "list", desc: "list or watch objects of kind " + gvk.Kind, response: listDef, query: append([]param{pretty}, listParams...)})
	}
	sub := func(name, def string) {
		p := item + "/" + name
		suffix := strings.ToUpper(name[:1]) + name[1:]
		paths[p] = append(paths[p],
			operation{method: "get", id: "read" + idBase + scope + gvk.Kind + suffix, action: "get", desc: "read " + name + " of the specified " + gvk.Kind, response: def, query: []param{pretty}, gvk: opGVK},
			operation{method: "put", id: "replace" + idBase + scope + gvk.Kind + suffix, action: "put", desc: "replace " + name + " of the specified " + gvk.Kind, body: def, response: def, query: writeQuery, gvk: opGVK},
			operation{method: "patch", id: "patch" + idBase + scope + gvk.Kind + suffix, action: "patch", desc: "partially update " + name + " of the specified " + gvk.Kind, body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: def, query: append(writeQuery, force), gvk: opGVK},
		)
	}
	if res.Status != nil {
		sub("status", kindDef)
	}
	if res.Scale != nil {
		scaleDef := defs.Define(reflect.TypeOf(autoscalingv1.Scale{}))
		p := item + "/scale"
		sub("scale", scaleDef)
		for i := range paths[p] {
			paths[p][i].gvk = metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
		}
	}
	return paths
}

func gvkExtension(gvk metav1.GroupVersionKind) map[string]interface{} {
	return map[string]interface{}{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
}

// v2Operation renders op for Swagger 2.0.
func v2Operation(op operation, pathParams []string) *spec.Operation {
	o := &spec.Operation{OperationProps: spec.OperationProps{
		ID: op.id, Description: op.desc, Consumes: []string{"*/*"},
		Produces:  []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"},
		Schemes:   []string{"https"},
		Responses: &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{}}},
	}}
	if op.method == "patch" {
		o.Consumes = patchTypes
	}
	o.AddExtension("x-kubernetes-action", op.action)
	o.AddExtension("x-kubernetes-group-version-kind", gvkExtension(op.gvk))
	for _, p := range pathParams {
		o.Parameters = append(o.Parameters, spec.Parameter{ParamProps: spec.ParamProps{Name: p, In: "path", Required: true}, SimpleSchema: spec.SimpleSchema{Type: "string"}})
	}
	if op.body != "" {
		o.Parameters = append(o.Parameters, spec.Parameter{ParamProps: spec.ParamProps{Name: "body", In: "body", Required: op.method != "delete", Schema: spec.RefSchema("#/definitions/" + op.body)}})
	}
	for _, q := range op.query {
		o.Parameters = append(o.Parameters, spec.Parameter{ParamProps: spec.ParamProps{Name: q.name, In: "query", Description: q.desc}, SimpleSchema: spec.SimpleSchema{Type: q.typ}})
	}
	resp := func(desc string) spec.Response {
		return spec.Response{ResponseProps: spec.ResponseProps{Description: desc, Schema: spec.RefSchema("#/definitions/" + op.response)}}
	}
	o.Responses.StatusCodeResponses[200] = resp("OK")
	if op.method == "post" || op.method == "put" {
		o.Responses.StatusCodeResponses[201] = resp("Created")
	}
	o.Responses.StatusCodeResponses[401] = spec.Response{ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}
	return o
}

// v3Operation renders op for OpenAPI 3.0.
func v3Operation(op operation, pathParams []string) *spec3.Operation {
	o := &spec3.Operation{OperationProps: spec3.OperationProps{
		OperationId: op.id, Description: op.desc,
		Responses: &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{}}},
	}}
	o.AddExtension("x-kubernetes-action", op.action)
	o.AddExtension("x-kubernetes-group-version-kind", gvkExtension(op.gvk))
	for _, p := range pathParams {
		o.Parameters = append(o.Parameters, &spec3.Parameter{ParameterProps: spec3.ParameterProps{Name: p, In: "path", Required: true, Schema: spec.StringProperty()}})
	}
	for _, q := range op.query {
		o.Parameters = append(o.Parameters, &spec3.Parameter{ParameterProps: spec3.ParameterProps{Name: q.name, In: "query", Description: q.desc, Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{q.typ}}}}})
	}
	ref := func(def string) *spec.Schema { return spec.RefSchema("#/components/schemas/" + def) }
	if op.body != "" {
		types := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
		if op.method == "patch" {
			types = patchTypes
		}
		content := map[string]*spec3.MediaType{}
		for _, t := range types {
			content[t] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: ref(op.body)}}
		}
		o.RequestBody = &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{Content: content, Required: op.method != "delete"}}
	}
	respContent := map[string]*spec3.MediaType{}
	for _, t := range []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"} {
		respContent[t] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: ref(op.response)}}
	}
	o.Responses.StatusCodeResponses[200] = &spec3.Response{ResponseProps: spec3.ResponseProps{Description: "OK", Content: respContent}}
	if op.method == "post" || op.method == "put" {
		o.Responses.StatusCodeResponses[201] = &spec3.Response{ResponseProps: spec3.ResponseProps{Description: "Created", Content: respContent}}
	}
	o.Responses.StatusCodeResponses[401] = &spec3.Response{ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}
	return o
}

// pathParams lists the {params} of a path in order.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}
