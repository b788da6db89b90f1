package openapi

import (
	"reflect"
	"sort"
	"strings"

	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// flavor selects between OpenAPI v2 and v3 schema forms.
type flavor int

const (
	v2 flavor = iota
	v3
)

func (f flavor) refPrefix() string {
	if f == v3 {
		return "#/components/schemas/"
	}
	return "#/definitions/"
}

// definitions builds named schemas from Go types.
type definitions struct {
	flavor  flavor
	schemas map[string]spec.Schema
}

func newDefinitions(f flavor) *definitions {
	return &definitions{flavor: f, schemas: map[string]spec.Schema{}}
}

type (
	schemaTyper  interface{ OpenAPISchemaType() []string }
	schemaFormat interface{ OpenAPISchemaFormat() string }
	v3OneOfTyper interface{ OpenAPIV3OneOfTypes() []string }
	swaggerDocer interface{ SwaggerDoc() map[string]string }
	modelNamer   interface{ OpenAPIModelName() string }
)

// modelName is the definition name of a named Go type.
func modelName(t reflect.Type) string {
	v := reflect.Zero(t).Interface()
	if m, ok := v.(modelNamer); ok {
		return m.OpenAPIModelName()
	}
	return util.ToRESTFriendlyName(util.GetCanonicalTypeName(v))
}

// Define makes sure t (a struct type) has a definition and returns its name.
func (d *definitions) Define(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := modelName(t)
	if _, ok := d.schemas[name]; ok {
		return name
	}
	d.schemas[name] = spec.Schema{} // placeholder breaks recursion
	d.schemas[name] = d.build(name, t)
	return name
}

func (d *definitions) build(name string, t reflect.Type) spec.Schema {
	zero := reflect.Zero(t).Interface()
	var s spec.Schema
	if doc, ok := zero.(swaggerDocer); ok {
		s.Description = doc.SwaggerDoc()[""]
	}
	if st, ok := zero.(schemaTyper); ok {
		s.Type = st.OpenAPISchemaType()
		if f, ok := zero.(schemaFormat); ok {
			s.Format = f.OpenAPISchemaFormat()
		}
		if o, ok := zero.(v3OneOfTyper); ok && d.flavor == v3 {
			if s.Format == "int-or-string" {
				s.AddExtension("x-kubernetes-int-or-string", true)
			}
			s.Type, s.Format = nil, ""
			for _, typ := range o.OpenAPIV3OneOfTypes() {
				s.OneOf = append(s.OneOf, spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{typ}}})
			}
		}
		return s
	}
	switch t.Kind() {
	case reflect.Struct:
	default:
		// Named non-struct types (e.g. []byte aliases) are inlined.
		return d.schemaOf(t)
	}
	if special, ok := opaqueObjects[name]; ok {
		s.Type = []string{"object"}
		if special != "" {
			s.Description = special
		}
		return s
	}
	s.Type = []string{"object"}
	s.Properties = map[string]spec.Schema{}
	var required []string
	d.addFields(t, &s, &required)
	sort.Strings(required)
	s.Required = required
	return s
}

// opaqueObjects are structs published as free-form objects.
var opaqueObjects = map[string]string{
	"io.k8s.apimachinery.pkg.runtime.RawExtension":    "",
	"io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1":   "",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Patch":      "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
	"io.k8s.apimachinery.pkg.runtime.Unknown":         "",
	"io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent": "",
}

func (d *definitions) addFields(t reflect.Type, s *spec.Schema, required *[]string) {
	var docs map[string]string
	if doc, ok := reflect.Zero(t).Interface().(swaggerDocer); ok {
		docs = doc.SwaggerDoc()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") || (f.Anonymous && name == "") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				d.addFields(ft, s, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		prop := d.schemaOf(f.Type)
		desc := docs[name]
		if prop.Ref.String() != "" {
			prop = d.describedRef(prop, desc)
		} else if desc != "" {
			prop.Description = desc
		}
		if strategy := f.Tag.Get("patchStrategy"); strategy != "" {
			prop.AddExtension("x-kubernetes-patch-strategy", strategy)
		}
		if key := f.Tag.Get("patchMergeKey"); key != "" {
			prop.AddExtension("x-kubernetes-patch-merge-key", key)
		}
		s.Properties[name] = prop
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}

// describedRef attaches a description to a reference: next to $ref in v2,
// through allOf in v3 (where siblings of $ref are ignored).
func (d *definitions) describedRef(ref spec.Schema, desc string) spec.Schema {
	if d.flavor == v2 {
		ref.Description = desc
		return ref
	}
	out := spec.Schema{SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{ref}, Description: desc}}
	out.Default = map[string]interface{}{}
	return out
}

// schemaOf returns the schema of a field of type t.
func (d *definitions) schemaOf(t reflect.Type) spec.Schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	zero := reflect.Zero(t).Interface()
	if _, ok := zero.(schemaTyper); ok && t.Kind() == reflect.Struct {
		return d.ref(t)
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.ref(t)
	case reflect.String:
		return prim("string", "")
	case reflect.Bool:
		return prim("boolean", "")
	case reflect.Int32, reflect.Int16, reflect.Int8, reflect.Uint16, reflect.Uint8:
		return prim("integer", "int32")
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return prim("integer", "int64")
	case reflect.Float32:
		return prim("number", "float")
	case reflect.Float64:
		return prim("number", "double")
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return prim("string", "byte")
		}
		item := d.schemaOf(t.Elem())
		if d.flavor == v3 && item.Ref.String() != "" {
			item = spec.Schema{SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{item}}}
			item.Default = map[string]interface{}{}
		}
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"array"}, Items: &spec.SchemaOrArray{Schema: &item}}}
	case reflect.Map:
		val := d.schemaOf(t.Elem())
		if d.flavor == v3 && val.Ref.String() != "" {
			val = spec.Schema{SchemaProps: spec.SchemaProps{AllOf: []spec.Schema{val}}}
		}
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}, AdditionalProperties: &spec.SchemaOrBool{Allows: true, Schema: &val}}}
	case reflect.Interface:
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}}}
	}
	return spec.Schema{}
}

func prim(typ, format string) spec.Schema {
	return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{typ}, Format: format}}
}

func (d *definitions) ref(t reflect.Type) spec.Schema {
	name := d.Define(t)
	return spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(d.flavor.refPrefix() + name)}}
}

func typeOf(v interface{}) reflect.Type { return reflect.TypeOf(v) }
