package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff/skiff/pkg/api"
)

var (
	metaV1      = schema.GroupVersion{Group: "meta.k8s.io", Version: "v1"}
	metaV1beta1 = schema.GroupVersion{Group: "meta.k8s.io", Version: "v1beta1"}
	coreV1      = schema.GroupVersion{Version: "v1"}
)

// encode serializes obj as kind in gv with the serializer info. Objects may
// be shared with the watch cache, so the encoder stamps the kind on a
// shallow copy, never on obj itself.
func encode(info runtime.SerializerInfo, pretty bool, obj runtime.Object, gv schema.GroupVersion) ([]byte, error) {
	obj = shallowCopy(obj)
	s := info.Serializer
	if pretty && info.PrettySerializer != nil {
		s = info.PrettySerializer
	}
	enc := api.Codecs.WithoutConversion().EncoderForVersion(s, gv)
	var buf bytes.Buffer
	if err := enc.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shallowCopy copies obj's top-level struct.
func shallowCopy(obj runtime.Object) runtime.Object {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return obj
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	return c.Interface().(runtime.Object)
}

// writeRaw writes an encoded body.
func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON writes obj as JSON regardless of Accept (discovery, errors of
// last resort).
func writeJSON(w http.ResponseWriter, r *http.Request, status int, obj runtime.Object, gv schema.GroupVersion) {
	info, _ := serializerFor(api.Codecs.SupportedMediaTypes(), mediaType{Type: "application", Subtype: "json"})
	body, err := encode(info, isTrue(r.URL.Query().Get("pretty")), obj, gv)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, runtime.ContentTypeJSON, body)
}

// writePlain writes obj in the first Accept type that has a plain
// serializer, JSON otherwise.
func writePlain(w http.ResponseWriter, r *http.Request, status int, obj runtime.Object, gv schema.GroupVersion) {
	infos := api.Codecs.SupportedMediaTypes()
	for _, m := range parseAccept(r.Header.Get("Accept")) {
		if m.As != "" {
			continue
		}
		if info, ok := serializerFor(infos, m); ok {
			body, err := encode(info, m.Pretty || isTrue(r.URL.Query().Get("pretty")), obj, gv)
			if err != nil {
				writeError(w, r, apierrors.NewInternalError(err))
				return
			}
			writeRaw(w, status, info.MediaType, body)
			return
		}
	}
	writeJSON(w, r, status, obj, gv)
}

// statusFor turns any error into a metav1.Status.
func statusFor(err error) *metav1.Status {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		if s.Status == "" {
			s.Status = metav1.StatusFailure
		}
		return &s
	}
	s := apierrors.NewInternalError(err).ErrStatus
	return &s
}

// writeError writes err as a metav1.Status with its HTTP code.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := statusFor(err)
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(st.Details.RetryAfterSeconds)))
	}
	writePlain(w, r, code, st, coreV1)
}

func notAcceptable(accept string) error {
	return apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", fmt.Sprintf("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (asked for %q)", accept), 0, false)
}

func unsupportedMediaType(ct string) error {
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "", fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", ct), 0, false)
}
