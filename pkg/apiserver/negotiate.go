package apiserver

import (
	"mime"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// mediaType is one acceptable response type from an Accept header.
type mediaType struct {
	Type, Subtype string
	// As, G and V select a transformed response: as=Table;g=meta.k8s.io;v=v1.
	As, G, V string
	Pretty   bool
}

func (m mediaType) full() string { return m.Type + "/" + m.Subtype }

// parseAccept parses an Accept header in order of preference (kubectl and
// client-go list types in preference order without q values).
func parseAccept(header string) []mediaType {
	var out []mediaType
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, params, err := mime.ParseMediaType(part)
		if err != nil {
			continue
		}
		typ, sub, _ := strings.Cut(t, "/")
		out = append(out, mediaType{Type: typ, Subtype: sub, As: params["as"], G: params["g"], V: params["v"], Pretty: params["pretty"] == "1"})
	}
	if len(out) == 0 {
		out = append(out, mediaType{Type: "*", Subtype: "*"})
	}
	return out
}

// serializerFor picks the serializer for a media type; */* and
// application/* mean JSON.
func serializerFor(infos []runtime.SerializerInfo, m mediaType) (runtime.SerializerInfo, bool) {
	want := m.full()
	if want == "*/*" || want == "application/*" {
		want = runtime.ContentTypeJSON
	}
	for _, info := range infos {
		if info.MediaType == want {
			return info, true
		}
	}
	return runtime.SerializerInfo{}, false
}

// contentSerializer picks the serializer for a request body's Content-Type.
func contentSerializer(infos []runtime.SerializerInfo, contentType string) (runtime.SerializerInfo, bool) {
	if contentType == "" {
		contentType = runtime.ContentTypeJSON
	}
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return runtime.SerializerInfo{}, false
	}
	for _, info := range infos {
		if info.MediaType == t {
			return info, true
		}
	}
	return runtime.SerializerInfo{}, false
}
