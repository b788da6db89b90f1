package apiserver

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff/skiff/pkg/registry"
)

// minWatchTimeout is the shortest server-chosen watch duration; watches
// last between one and two of these, so reconnects spread out.
const minWatchTimeout = 30 * time.Minute

// serveWatch streams watch events for st until the client goes, the
// timeout passes, or the watch ends (an ERROR such as 410 Gone).
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, st *registry.Store, ns string, opts *metav1.ListOptions) {
	o, err := negotiate(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if o.info.StreamSerializer == nil {
		writeError(w, r, notAcceptable(r.Header.Get("Accept")))
		return
	}
	timeout := minWatchTimeout + time.Duration(rand.Int64N(int64(minWatchTimeout)))
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	wi, err := st.Watch(ctx, ns, opts)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer wi.Stop()

	flusher, _ := w.(http.Flusher)
	framer := o.info.StreamSerializer.Framer.NewFrameWriter(w)
	streamEnc := o.info.StreamSerializer.Serializer
	contentType := o.info.MediaType
	if o.info.MediaType == runtime.ContentTypeProtobuf {
		contentType = runtime.ContentTypeProtobuf + ";stream=watch"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	res := st.Resource
	var evBuf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			obj, gv, err := s.watchObject(o, res, ev)
			if err != nil {
				obj, gv = statusFor(apierrors.NewInternalError(err)), coreV1
				ev.Type = watch.Error
			}
			raw, err := encode(o.info, false, obj, gv)
			if err != nil {
				return
			}
			evBuf.Reset()
			out := &metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: raw}}
			if err := streamEnc.Encode(out, &evBuf); err != nil {
				return
			}
			if _, err := framer.Write(evBuf.Bytes()); err != nil {
				return
			}
			if len(wi.ResultChan()) == 0 && flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// watchObject transforms one event's object to the negotiated form.
func (s *Server) watchObject(o output, res *registry.Resource, ev watch.Event) (runtime.Object, schema.GroupVersion, error) {
	if ev.Type == watch.Error {
		return ev.Object, coreV1, nil
	}
	switch o.as {
	case "":
		return ev.Object, res.GroupVersion(), nil
	case "Table":
		if ev.Type == watch.Bookmark {
			acc, err := meta.Accessor(ev.Object)
			if err != nil {
				return nil, o.gv, err
			}
			t := &metav1.Table{}
			t.ResourceVersion = acc.GetResourceVersion()
			return t, o.gv, nil
		}
		t, err := toTable(res, ev.Object, false, o.includeObject, s.clock.Now())
		return t, o.gv, err
	default:
		m, err := partialMetadata(ev.Object)
		return m, o.gv, err
	}
}
