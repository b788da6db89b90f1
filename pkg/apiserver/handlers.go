package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apiserver/pkg/warning"

	"github.com/skiff/skiff/pkg/api"
	"github.com/skiff/skiff/pkg/registry"
)

// MaxRequestBodyBytes is the largest request body accepted (upstream's 3 MiB).
const MaxRequestBodyBytes = 3 << 20

// serveResource dispatches a resource request to its verb.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, ri *requestInfo, st *registry.Store) {
	res := st.Resource
	ctx := r.Context()
	if res.Namespaced && ri.Namespace == "" && (ri.Name != "" || ri.Verb == "create" || ri.Verb == "deletecollection") {
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "the server could not find the requested resource", 0, false))
		return
	}
	if !res.Namespaced && ri.Namespace != "" {
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "the server could not find the requested resource", 0, false))
		return
	}
	if ri.Subresource != "" {
		s.serveSubresource(w, r, ri, st)
		return
	}
	if !res.Serves(ri.Verb) {
		writeError(w, r, apierrors.NewMethodNotSupported(res.GroupResource(), ri.Verb))
		return
	}
	q := r.URL.Query()
	switch ri.Verb {
	case "get":
		var opts metav1.GetOptions
		if err := decodeParams(q, &opts); err != nil {
			writeError(w, r, err)
			return
		}
		obj, err := st.Get(ctx, ri.Namespace, ri.Name, &opts)
		if err != nil {
			writeError(w, r, err)
			return
		}
		s.writeObject(w, r, http.StatusOK, res, obj, false)
	case "list":
		var opts metav1.ListOptions
		if err := decodeParams(q, &opts); err != nil {
			writeError(w, r, err)
			return
		}
		list, err := st.List(ctx, ri.Namespace, &opts)
		if err != nil {
			writeError(w, r, err)
			return
		}
		s.writeObject(w, r, http.StatusOK, res, list, true)
	case "watch":
		var opts metav1.ListOptions
		if err := decodeParams(q, &opts); err != nil {
			writeError(w, r, err)
			return
		}
		s.serveWatch(w, r, st, ri.Namespace, &opts)
	case "create":
		dryRun, err := dryRunParam(q)
		if err != nil {
			writeError(w, r, err)
			return
		}
		obj, err := s.decodeBody(w, r, res.GroupVersionKind(), res.New())
		if err != nil {
			writeError(w, r, err)
			return
		}
		out, err := st.Create(ctx, ri.Namespace, obj, registry.CreateOptions{DryRun: dryRun})
		if err != nil {
			writeError(w, r, err)
			return
		}
		s.writeObject(w, r, http.StatusCreated, res, out, false)
	case "update":
		s.serveUpdate(w, r, ri, st, "")
	case "patch":
		s.servePatch(w, r, ri, st, "")
	case "delete":
		opts, err := deleteOptions(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		obj, gone, err := st.Delete(ctx, ri.Namespace, ri.Name, opts)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !gone {
			// Upstream answers 202 only when the client asked for
			// cascading deletion the old way (orphanDependents=false); a
			// graceful or finalizer-held deletion is 200.
			code := http.StatusOK
			if o := opts.OrphanDependents; o != nil && !*o { //nolint:staticcheck // still sent by older clients
				code = http.StatusAccepted
			}
			s.writeObject(w, r, code, res, obj, false)
			return
		}
		if res.ReturnDeletedObject {
			s.writeObject(w, r, http.StatusOK, res, obj, false)
			return
		}
		acc, _ := meta.Accessor(obj)
		writePlain(w, r, http.StatusOK, &metav1.Status{
			Status: metav1.StatusSuccess,
			Details: &metav1.StatusDetails{
				Name: ri.Name, Group: res.Group, Kind: res.Resource, UID: acc.GetUID(),
			},
		}, coreV1)
	case "deletecollection":
		opts, err := deleteOptions(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		var listOpts metav1.ListOptions
		if err := decodeParams(q, &listOpts); err != nil {
			writeError(w, r, err)
			return
		}
		if err := st.DeleteCollection(ctx, ri.Namespace, &listOpts, opts); err != nil {
			writeError(w, r, err)
			return
		}
		writePlain(w, r, http.StatusOK, &metav1.Status{Status: metav1.StatusSuccess}, coreV1)
	default:
		writeError(w, r, apierrors.NewMethodNotSupported(res.GroupResource(), ri.Verb))
	}
}

// serveUpdate handles PUT on an object or its status.
func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, ri *requestInfo, st *registry.Store, sub string) {
	res := st.Resource
	dryRun, err := dryRunParam(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	obj, err := s.decodeBody(w, r, res.GroupVersionKind(), res.New())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, created, err := st.Update(r.Context(), ri.Namespace, ri.Name, func(ctx context.Context, old runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	}, registry.UpdateOptions{Subresource: sub, DryRun: dryRun})
	if err != nil {
		writeError(w, r, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.writeObject(w, r, code, res, out, false)
}

// decodeParams decodes query parameters into a metav1 options struct.
func decodeParams(q map[string][]string, into runtime.Object) error {
	if err := api.ParameterCodec.DecodeParameters(q, coreV1, into); err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	return nil
}

func dryRunParam(q map[string][]string) (bool, error) {
	for _, d := range q["dryRun"] {
		if d != metav1.DryRunAll {
			return false, apierrors.NewBadRequest(fmt.Sprintf("Unsupported value: %q: supported values: %q", d, metav1.DryRunAll))
		}
		return true, nil
	}
	return false, nil
}

// readBody reads a request body, refusing bodies over the limit with 413.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if len(body) > MaxRequestBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", MaxRequestBodyBytes))
	}
	return body, nil
}

func deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		obj, _, err := api.Codecs.UniversalDeserializer().Decode(body, &schema.GroupVersionKind{Version: "v1", Kind: "DeleteOptions"}, opts)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("decode DeleteOptions: %v", err))
		}
		if o, ok := obj.(*metav1.DeleteOptions); ok {
			opts = o
		}
	} else if err := decodeParams(r.URL.Query(), opts); err != nil {
		return nil, err
	}
	if len(r.URL.Query()["dryRun"]) > 0 && len(opts.DryRun) == 0 {
		opts.DryRun = r.URL.Query()["dryRun"]
	}
	return opts, nil
}

// fieldValidation returns the request's fieldValidation directive.
func fieldValidation(q map[string][]string) (string, error) {
	v := ""
	if vs := q["fieldValidation"]; len(vs) > 0 {
		v = vs[0]
	}
	switch v {
	case "":
		return metav1.FieldValidationWarn, nil
	case metav1.FieldValidationIgnore, metav1.FieldValidationWarn, metav1.FieldValidationStrict:
		return v, nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation parameter unsupported: %q", v))
}

// decodeBody decodes the request body as an object of kind gvk into into,
// applying the fieldValidation directive; warnings go to Warning headers.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, gvk schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return s.decodeBytes(w, r, body, r.Header.Get("Content-Type"), gvk, into)
}

func (s *Server) decodeBytes(w http.ResponseWriter, r *http.Request, body []byte, contentType string, gvk schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	validation, err := fieldValidation(r.URL.Query())
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, apierrors.NewBadRequest("the request body is empty")
	}
	info, ok := contentSerializer(api.Codecs.SupportedMediaTypes(), contentType)
	if !ok {
		return nil, unsupportedMediaType(contentType)
	}
	if err := checkTypeMeta(info.MediaType, body, gvk); err != nil {
		return nil, err
	}
	dec := info.Serializer
	if validation != metav1.FieldValidationIgnore && info.StrictSerializer != nil {
		dec = info.StrictSerializer
	}
	obj, actual, err := dec.Decode(body, &gvk, into)
	if err != nil && runtime.IsStrictDecodingError(err) && obj != nil {
		sde, _ := runtime.AsStrictDecodingError(err)
		if validation == metav1.FieldValidationStrict {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
		}
		for _, e := range sde.Errors() {
			warning.AddWarning(r.Context(), "", e.Error())
		}
		err = nil
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
	}
	if actual != nil && (actual.GroupVersion() != gvk.GroupVersion() || actual.Kind != gvk.Kind) {
		if actual.GroupVersion() != gvk.GroupVersion() {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", actual.GroupVersion(), gvk.GroupVersion()))
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", actual.Kind, gvk.Kind))
	}
	return obj, nil
}

// checkTypeMeta rejects JSON and YAML bodies whose apiVersion or kind names
// another type than the endpoint serves, with upstream's messages.
func checkTypeMeta(mediaType string, body []byte, gvk schema.GroupVersionKind) error {
	data := body
	switch mediaType {
	case runtime.ContentTypeJSON:
	case runtime.ContentTypeYAML:
		var err error
		if data, err = yaml.ToJSON(body); err != nil {
			return nil // the decoder reports the syntax error
		}
	default:
		return nil
	}
	actual, err := jsonserializer.DefaultMetaFactory.Interpret(data)
	if err != nil || actual == nil {
		return nil
	}
	if actual.Version != "" && actual.GroupVersion() != gvk.GroupVersion() {
		return apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", actual.GroupVersion(), gvk.GroupVersion()))
	}
	if actual.Kind != "" && actual.Kind != gvk.Kind {
		return apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", actual.Kind, gvk.Kind))
	}
	return nil
}
