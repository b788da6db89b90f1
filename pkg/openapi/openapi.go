package openapi

import (
	"net/http"
	"strings"

	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff/skiff/pkg/registry"
)

// Handler serves /openapi/v2 and /openapi/v3 for resources. Documents are
// built on first request and cached for the life of the server (the set of
// resources never changes at run time).
func Handler(resources []*registry.Resource, version string) (http.Handler, error) {
	mux := &prefixMux{ServeMux: http.NewServeMux()}
	v2 := handler.NewOpenAPIServiceLazy(cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		return BuildV2(resources, version), "", nil
	})))
	v2.RegisterOpenAPIVersionedService("/openapi/v2", mux)

	v3svc := handler3.NewOpenAPIService()
	byGV := map[string][]*registry.Resource{}
	for _, r := range resources {
		byGV[gvPath(r)] = append(byGV[gvPath(r)], r)
	}
	for gv, rs := range byGV {
		rs := rs
		v3svc.UpdateGroupVersionLazy(gv, cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
			return BuildV3(rs, version), "", nil
		})))
	}
	if err := v3svc.RegisterOpenAPIV3VersionedService("/openapi/v3", mux); err != nil {
		return nil, err
	}
	return mux, nil
}

// gvPath is a group version's key in /openapi/v3: "api/v1", "apis/apps/v1".
func gvPath(r *registry.Resource) string {
	if r.Group == "" {
		return "api/" + r.Version
	}
	return "apis/" + r.Group + "/" + r.Version
}

// prefixMux adds the prefix registration handler3 asks for.
type prefixMux struct{ *http.ServeMux }

func (m *prefixMux) HandlePrefix(path string, h http.Handler) {
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	m.ServeMux.Handle(path, h)
}

func info(version string) *spec.Info {
	return &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: version}}
}

// BuildV2 returns the Swagger 2.0 document of resources.
func BuildV2(resources []*registry.Resource, version string) *spec.Swagger {
	defs := newDefinitions(v2)
	paths := &spec.Paths{Paths: map[string]spec.PathItem{}}
	for _, res := range resources {
		for path, ops := range resourcePaths(defs, res) {
			item := paths.Paths[path]
			for _, op := range ops {
				o := v2Operation(op, pathParams(path))
				setV2(&item, op.method, o)
			}
			paths.Paths[path] = item
		}
	}
	tagKinds(defs, resources)
	return &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:     "2.0",
		Info:        info(version),
		Paths:       paths,
		Definitions: spec.Definitions(defs.schemas),
	}}
}

func setV2(item *spec.PathItem, method string, o *spec.Operation) {
	switch method {
	case "get":
		item.Get = o
	case "put":
		item.Put = o
	case "post":
		item.Post = o
	case "patch":
		item.Patch = o
	case "delete":
		item.Delete = o
	}
}

// BuildV3 returns the OpenAPI 3.0 document of one group version's resources.
func BuildV3(resources []*registry.Resource, version string) *spec3.OpenAPI {
	defs := newDefinitions(v3)
	paths := &spec3.Paths{Paths: map[string]*spec3.Path{}}
	for _, res := range resources {
		for path, ops := range resourcePaths(defs, res) {
			item := paths.Paths[path]
			if item == nil {
				item = &spec3.Path{}
				paths.Paths[path] = item
			}
			for _, op := range ops {
				o := v3Operation(op, pathParams(path))
				switch op.method {
				case "get":
					item.Get = o
				case "put":
					item.Put = o
				case "post":
					item.Post = o
				case "patch":
					item.Patch = o
				case "delete":
					item.Delete = o
				}
			}
		}
	}
	tagKinds(defs, resources)
	// The builder holds exactly what this group version's operations refer to.
	schemas := map[string]*spec.Schema{}
	for name, s := range defs.schemas {
		s := s
		schemas[name] = &s
	}
	return &spec3.OpenAPI{
		Version:    "3.0.0",
		Info:       info(version),
		Paths:      paths,
		Components: &spec3.Components{Schemas: schemas},
	}
}

// tagKinds marks top-level kinds with x-kubernetes-group-version-kind.
func tagKinds(defs *definitions, resources []*registry.Resource) {
	for _, res := range resources {
		for _, pair := range []struct {
			name, kind string
		}{{defs.Define(typeOf(res.New())), res.Kind}, {defs.Define(typeOf(res.NewList())), res.Kind + "List"}} {
			s := defs.schemas[pair.name]
			s.AddExtension("x-kubernetes-group-version-kind", []interface{}{
				map[string]interface{}{"group": res.Group, "version": res.Version, "kind": pair.kind},
			})
			defs.schemas[pair.name] = s
		}
	}
}
