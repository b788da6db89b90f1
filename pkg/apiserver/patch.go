package apiserver

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
)

// maxJSONPatchOperations bounds the work one JSON patch may ask for.
const maxJSONPatchOperations = 10000

// patcher applies one patch document of a given type to JSON.
type patcher struct {
	typ   types.PatchType
	patch []byte
	// schema is an empty object of the patched type, for strategic merge.
	schema runtime.Object
}

func patchType(r *http.Request) (types.PatchType, error) {
	ct := r.Header.Get("Content-Type")
	t, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", unsupportedMediaType(ct)
	}
	switch pt := types.PatchType(t); pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
		return pt, nil
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		return "", apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", schema.GroupResource{}, "", "server-side apply is not supported yet; use client-side kubectl apply", 0, false)
	}
	return "", unsupportedMediaType(ct)
}

// apply returns original with the patch applied.
func (p patcher) apply(original []byte) ([]byte, error) {
	switch p.typ {
	case types.JSONPatchType:
		patch, err := jsonpatch.DecodePatch(p.patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if len(patch) > maxJSONPatchOperations {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(patch)))
		}
		out, err := patch.Apply(original)
		if err != nil {
			return nil, interpretPatchError(err)
		}
		return out, nil
	case types.MergePatchType:
		out, err := jsonpatch.MergePatch(original, p.patch)
		if err != nil {
			return nil, interpretPatchError(err)
		}
		return out, nil
	case types.StrategicMergePatchType:
		out, err := strategicpatch.StrategicMergePatch(original, p.patch, p.schema)
		if err != nil {
			return nil, interpretPatchError(err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported patch type %q", p.typ)
}

// interpretPatchError maps patch library errors as upstream does: malformed
// documents are 400, patches that cannot apply are 422.
func interpretPatchError(err error) error {
	switch {
	case errors.Is(err, jsonpatch.ErrBadJSONPatch), errors.Is(err, jsonpatch.ErrBadJSONDoc),
		errors.Is(err, mergepatch.ErrBadJSONDoc), errors.Is(err, mergepatch.ErrNoListOfLists),
		errors.Is(err, mergepatch.ErrBadPatchFormatForPrimitiveList), errors.Is(err, mergepatch.ErrBadPatchFormatForRetainKeys),
		errors.Is(err, mergepatch.ErrBadPatchFormatForSetElementOrderList), errors.Is(err, mergepatch.ErrUnsupportedStrategicMergePatchFormat):
		return apierrors.NewBadRequest(err.Error())
	}
	return apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{field.Invalid(field.NewPath("patch"), "", err.Error())})
}

// servePatch handles PATCH on an object or its status.
func (s *Server) servePatch(w http.ResponseWriter, r *http.Request, ri *requestInfo, st *registry.Store, sub string) {
	res := st.Resource
	pt, err := patchType(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	dryRun, err := dryRunParam(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	p := patcher{typ: pt, patch: body, schema: res.New()}
	gvk := res.GroupVersionKind()
	out, _, err := st.Update(r.Context(), ri.Namespace, ri.Name, func(ctx context.Context, old runtime.Object) (runtime.Object, error) {
		if old == nil {
			return nil, apierrors.NewNotFound(res.GroupResource(), ri.Name)
		}
		original, err := encode(jsonInfo(), false, old, res.GroupVersion())
		if err != nil {
			return nil, err
		}
		patched, err := p.apply(original)
		if err != nil {
			return nil, err
		}
		return s.decodeBytes(w, r, patched, runtime.ContentTypeJSON, gvk, res.New())
	}, registry.UpdateOptions{Subresource: sub, DryRun: dryRun})
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.writeObject(w, r, http.StatusOK, res, out, false)
}
