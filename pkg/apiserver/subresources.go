package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/api"
	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/proxy"
)

var autoscalingV1 = schema.GroupVersion{Group: "autoscaling", Version: "v1"}

// serveSubresource serves status, scale and the resource's own subresources.
func (s *Server) serveSubresource(w http.ResponseWriter, r *http.Request, ri *requestInfo, st *registry.Store) {
	res := st.Resource
	switch {
	case ri.Subresource == "status" && res.Status != nil:
		switch ri.Verb {
		case "get":
			obj, err := st.Get(r.Context(), ri.Namespace, ri.Name, &metav1.GetOptions{})
			if err != nil {
				writeError(w, r, err)
				return
			}
			s.writeObject(w, r, http.StatusOK, res, obj, false)
		case "update":
			s.serveUpdate(w, r, ri, st, "status")
		case "patch":
			s.servePatch(w, r, ri, st, "status")
		default:
			writeError(w, r, apierrors.NewMethodNotSupported(res.GroupResource(), ri.Verb))
		}
		return
	case ri.Subresource == "scale" && res.Scale != nil:
		s.serveScale(w, r, ri, st)
		return
	}
	for _, sub := range res.Subresources {
		name, path, hasPath := strings.Cut(ri.Subresource, "/")
		if name != sub.Name || (hasPath && !sub.TakesPath) {
			continue
		}
		if hasPath {
			// pods/NAME/proxy/PATH is pods/NAME/proxy?path=PATH.
			q := r.URL.Query()
			q.Set(proxy.PathParam, "/"+path)
			if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(path, "/") {
				q.Set(proxy.PathParam, "/"+path+"/")
			}
			ri.Subresource = name
			s.serveCustomSubresource(w, r, ri, st, sub, q)
			return
		}
		s.serveCustomSubresource(w, r, ri, st, sub, r.URL.Query())
		return
	}
	writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "the server could not find the requested resource", 0, false))
}

func (s *Server) serveCustomSubresource(w http.ResponseWriter, r *http.Request, ri *requestInfo, st *registry.Store, sub registry.Subresource, opts url.Values) {
	ctx := r.Context()
	gr := schema.GroupResource{Group: st.Resource.Group, Resource: st.Resource.Resource + "/" + sub.Name}
	dryRun, err := dryRunParam(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	switch {
	case sub.Connect != nil && (slices.Contains(sub.Verbs, ri.Verb) || sub.TakesPath && ri.Verb == "options"):
		h, err := sub.Connect(ctx, ri.Namespace, ri.Name, opts)
		if err != nil {
			writeError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	case sub.Create != nil && ri.Verb == "create":
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		gv := schema.GroupVersion{Group: sub.Group, Version: sub.Version}
		if gv.Empty() {
			gv = st.Resource.GroupVersion()
		}
		obj, err := s.decodeAny(w, r, body, gv.WithKind(sub.Kind), sub.New())
		if err != nil {
			writeError(w, r, err)
			return
		}
		out, err := sub.Create(ctx, ri.Namespace, ri.Name, obj, dryRun)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writePlain(w, r, http.StatusCreated, out, gv)
	case sub.Update != nil && ri.Verb == "update":
		obj, err := s.decodeBody(w, r, st.Resource.GroupVersionKind(), st.Resource.New())
		if err != nil {
			writeError(w, r, err)
			return
		}
		out, err := sub.Update(ctx, ri.Name, obj, dryRun)
		if err != nil {
			writeError(w, r, err)
			return
		}
		s.writeObject(w, r, http.StatusOK, st.Resource, out, false)
	default:
		writeError(w, r, apierrors.NewMethodNotSupported(gr, ri.Verb))
	}
}

// decodeAny decodes a subresource body that may come in any version
// registered for the Go type of into (Eviction in policy/v1 or v1beta1).
func (s *Server) decodeAny(w http.ResponseWriter, r *http.Request, body []byte, gvk schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	kinds, _, err := api.Scheme.ObjectKinds(into)
	if err != nil {
		return nil, err
	}
	if _, actual, err := api.Codecs.UniversalDeserializer().Decode(body, &gvk, nil); err == nil && actual != nil {
		for _, k := range kinds {
			if k == *actual {
				gvk = k
			}
		}
	}
	return s.decodeBytes(w, r, body, r.Header.Get("Content-Type"), gvk, into)
}

// scaleOf builds the autoscaling/v1 Scale of obj.
func scaleOf(res *registry.Resource, obj runtime.Object) (*autoscalingv1.Scale, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	spec, status, selector := res.Scale.Get(obj)
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name:              acc.GetName(),
			Namespace:         acc.GetNamespace(),
			UID:               acc.GetUID(),
			ResourceVersion:   acc.GetResourceVersion(),
			CreationTimestamp: acc.GetCreationTimestamp(),
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: selector},
	}, nil
}

// serveScale serves GET, PUT and PATCH of the scale subresource.
func (s *Server) serveScale(w http.ResponseWriter, r *http.Request, ri *requestInfo, st *registry.Store) {
	res := st.Resource
	ctx := r.Context()
	scaleKind := autoscalingV1.WithKind("Scale")
	switch ri.Verb {
	case "get":
		obj, err := st.Get(ctx, ri.Namespace, ri.Name, &metav1.GetOptions{})
		if err != nil {
			writeError(w, r, err)
			return
		}
		sc, err := scaleOf(res, obj)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writePlain(w, r, http.StatusOK, sc, autoscalingV1)
	case "update", "patch":
		dryRun, err := dryRunParam(r.URL.Query())
		if err != nil {
			writeError(w, r, err)
			return
		}
		var pt patcher
		var want *autoscalingv1.Scale
		if ri.Verb == "patch" {
			typ, err := patchType(r)
			if err != nil {
				writeError(w, r, err)
				return
			}
			body, err := readBody(r)
			if err != nil {
				writeError(w, r, err)
				return
			}
			pt = patcher{typ: typ, patch: body, schema: &autoscalingv1.Scale{}}
		} else {
			obj, err := s.decodeBody(w, r, scaleKind, &autoscalingv1.Scale{})
			if err != nil {
				writeError(w, r, err)
				return
			}
			want = obj.(*autoscalingv1.Scale)
		}
		out, _, err := st.Update(ctx, ri.Namespace, ri.Name, func(ctx context.Context, old runtime.Object) (runtime.Object, error) {
			if old == nil {
				return nil, apierrors.NewNotFound(res.GroupResource(), ri.Name)
			}
			cur, err := scaleOf(res, old)
			if err != nil {
				return nil, err
			}
			sc := want
			if pt.typ != "" {
				original, err := encode(jsonInfo(), false, cur, autoscalingV1)
				if err != nil {
					return nil, err
				}
				patched, err := pt.apply(original)
				if err != nil {
					return nil, err
				}
				obj, err := s.decodeBytes(w, r, patched, runtime.ContentTypeJSON, scaleKind, &autoscalingv1.Scale{})
				if err != nil {
					return nil, err
				}
				sc = obj.(*autoscalingv1.Scale)
			}
			if sc.Name != ri.Name {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", sc.Name, ri.Name))
			}
			if sc.Spec.Replicas < 0 {
				return nil, apierrors.NewInvalid(scaleKind.GroupKind(), ri.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), sc.Spec.Replicas, "must be greater than or equal to 0")})
			}
			if sc.ResourceVersion != "" && sc.ResourceVersion != cur.ResourceVersion {
				return nil, apierrors.NewConflict(res.GroupResource(), ri.Name, fmt.Errorf("%s", registry.OptimisticLockErrorMsg))
			}
			res.Scale.SetReplicas(old, sc.Spec.Replicas)
			return old, nil
		}, registry.UpdateOptions{DryRun: dryRun})
		if err != nil {
			writeError(w, r, err)
			return
		}
		sc, err := scaleOf(res, out)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writePlain(w, r, http.StatusOK, sc, autoscalingV1)
	default:
		writeError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Group: res.Group, Resource: res.Resource + "/scale"}, ri.Verb))
	}
}
