package apiserver

import (
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff/skiff/pkg/api"
	"github.com/skiff/skiff/pkg/registry"
)

// output is a negotiated response form: plain objects, Tables, or
// metadata-only objects.
type output struct {
	info   runtime.SerializerInfo
	pretty bool
	// as is "", "Table", "PartialObjectMetadata" or "PartialObjectMetadataList".
	as string
	// gv is the meta.k8s.io version of a transformed response.
	gv schema.GroupVersion
	// includeObject says what a Table row embeds.
	includeObject metav1.IncludeObjectPolicy
	noHeaders     bool
}

// negotiate picks the response form for a resource request.
func negotiate(r *http.Request) (output, error) {
	infos := api.Codecs.SupportedMediaTypes()
	q := r.URL.Query()
	accept := r.Header.Get("Accept")
	for _, m := range parseAccept(accept) {
		info, ok := serializerFor(infos, m)
		if !ok {
			continue
		}
		o := output{info: info, pretty: m.Pretty || isTrue(q.Get("pretty"))}
		switch m.As {
		case "":
			return o, nil
		case "Table", "PartialObjectMetadata", "PartialObjectMetadataList":
			if m.G != "meta.k8s.io" || (m.V != "v1" && m.V != "v1beta1") || info.MediaType == runtime.ContentTypeProtobuf && m.As == "Table" {
				continue
			}
			o.as, o.gv = m.As, schema.GroupVersion{Group: m.G, Version: m.V}
			o.includeObject = metav1.IncludeObjectPolicy(q.Get("includeObject"))
			if o.includeObject == "" {
				o.includeObject = metav1.IncludeMetadata
			}
			o.noHeaders = false
			return o, nil
		}
	}
	return output{}, notAcceptable(accept)
}

// transform converts obj (an object, or a list when list is set) of res to
// the negotiated form and returns it with the group version to encode it in.
func (o output) transform(res *registry.Resource, obj runtime.Object, list bool, now time.Time) (runtime.Object, schema.GroupVersion, error) {
	switch o.as {
	case "":
		return obj, res.GroupVersion(), nil
	case "Table":
		t, err := toTable(res, obj, list, o.includeObject, now)
		return t, o.gv, err
	case "PartialObjectMetadata":
		if list {
			return nil, o.gv, notAcceptable("application/json;as=PartialObjectMetadata for a list")
		}
		m, err := partialMetadata(obj)
		return m, o.gv, err
	case "PartialObjectMetadataList":
		if !list {
			return nil, o.gv, notAcceptable("application/json;as=PartialObjectMetadataList for a single object")
		}
		items, err := meta.ExtractList(obj)
		if err != nil {
			return nil, o.gv, err
		}
		out := &metav1.PartialObjectMetadataList{Items: make([]metav1.PartialObjectMetadata, 0, len(items))}
		if lacc, err := meta.ListAccessor(obj); err == nil {
			out.ResourceVersion, out.Continue, out.RemainingItemCount = lacc.GetResourceVersion(), lacc.GetContinue(), lacc.GetRemainingItemCount()
		}
		for _, item := range items {
			m, err := partialMetadata(item)
			if err != nil {
				return nil, o.gv, err
			}
			out.Items = append(out.Items, *m)
		}
		return out, o.gv, nil
	}
	return nil, o.gv, fmt.Errorf("unknown output %q", o.as)
}

func partialMetadata(obj runtime.Object) (*metav1.PartialObjectMetadata, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	m := meta.AsPartialObjectMetadata(acc)
	m.TypeMeta = metav1.TypeMeta{APIVersion: metaV1.String(), Kind: "PartialObjectMetadata"}
	return m, nil
}

// defaultColumns are those of a resource without its own printer.
var defaultColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]},
	{Name: "Created At", Type: "date", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]},
}

// toTable renders obj (or each item of a list) as Table rows.
func toTable(res *registry.Resource, obj runtime.Object, list bool, include metav1.IncludeObjectPolicy, now time.Time) (*metav1.Table, error) {
	t := &metav1.Table{}
	if res.Table != nil {
		t.ColumnDefinitions = res.Table.Columns
	} else {
		t.ColumnDefinitions = defaultColumns
	}
	items := []runtime.Object{obj}
	if list {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, err
		}
		if lacc, err := meta.ListAccessor(obj); err == nil {
			t.ResourceVersion, t.Continue, t.RemainingItemCount = lacc.GetResourceVersion(), lacc.GetContinue(), lacc.GetRemainingItemCount()
		}
	} else if acc, err := meta.Accessor(obj); err == nil {
		t.ResourceVersion = acc.GetResourceVersion()
	}
	t.Rows = make([]metav1.TableRow, 0, len(items))
	for _, item := range items {
		row, err := tableRow(res, item, include, now)
		if err != nil {
			return nil, err
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

func tableRow(res *registry.Resource, item runtime.Object, include metav1.IncludeObjectPolicy, now time.Time) (metav1.TableRow, error) {
	acc, err := meta.Accessor(item)
	if err != nil {
		return metav1.TableRow{}, err
	}
	var row metav1.TableRow
	if res.Table != nil {
		row.Cells = res.Table.Row(item, now)
	} else {
		row.Cells = []interface{}{acc.GetName(), acc.GetCreationTimestamp().UTC().Format(time.RFC3339)}
	}
	switch include {
	case metav1.IncludeObject:
		raw, err := encode(jsonInfo(), false, item, res.GroupVersion())
		if err != nil {
			return row, err
		}
		row.Object.Raw = raw
	case metav1.IncludeMetadata:
		m, err := partialMetadata(item)
		if err != nil {
			return row, err
		}
		raw, err := encode(jsonInfo(), false, m, metaV1)
		if err != nil {
			return row, err
		}
		row.Object.Raw = raw
	}
	return row, nil
}

func jsonInfo() runtime.SerializerInfo {
	info, _ := serializerFor(api.Codecs.SupportedMediaTypes(), mediaType{Type: "application", Subtype: "json"})
	return info
}

// writeObject writes obj (a list when list is set) of res in the negotiated form.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, status int, res *registry.Resource, obj runtime.Object, list bool) {
	o, err := negotiate(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, gv, err := o.transform(res, obj, list, s.clock.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	body, err := encode(o.info, o.pretty, out, gv)
	if err != nil {
		writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	writeRaw(w, status, o.info.MediaType, body)
}
