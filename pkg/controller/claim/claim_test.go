package claim

import (
	"context"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

func pod(name string, l map[string]string, owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: k8stypes.UID("uid-" + name), Labels: l}}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

func TestObjects(t *testing.T) {
	ownerObj := &metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "owner"}
	kind := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}
	ref := metav1.NewControllerRef(ownerObj, kind)
	other := metav1.NewControllerRef(&metav1.ObjectMeta{Name: "x", UID: "other"}, kind)
	web := map[string]string{"app": "web"}
	pods := []*corev1.Pod{
		pod("kept", web, ref),
		pod("released", map[string]string{"app": "other"}, ref),
		pod("orphan", web, nil),
		pod("gone", web, nil),
		pod("foreign", web, other),
		pod("unrelated", map[string]string{"app": "other"}, nil),
	}
	patched := map[string]map[string]any{}
	patch := func(_ context.Context, p *corev1.Pod, body []byte) error {
		if p.Name == "gone" {
			return apierrors.NewNotFound(corev1.Resource("pods"), p.Name)
		}
		var m map[string]map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		patched[p.Name] = m["metadata"]
		return nil
	}
	o := Owner{Meta: ownerObj, Kind: kind, Selector: labels.SelectorFromSet(web)}
	got, err := Objects(context.Background(), o, pods, patch, func(*corev1.Pod, bool) map[string]any { return map[string]any{"x": 1} })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if len(names) != 2 || names[0] != "kept" || names[1] != "orphan" {
		t.Fatalf("owned %v, want [kept orphan]", names)
	}
	if len(patched) != 2 || patched["orphan"] == nil || patched["released"] == nil {
		t.Fatalf("patched %v", patched)
	}
	if refs := patched["orphan"]["ownerReferences"].([]any); len(refs) != 1 || patched["orphan"]["uid"] != "uid-orphan" || patched["orphan"]["x"] == nil {
		t.Fatalf("adoption patch %v", patched["orphan"])
	}
	if refs := patched["released"]["ownerReferences"].([]any); len(refs) != 0 {
		t.Fatalf("release patch %v", patched["released"])
	}

	// A deleted owner neither adopts nor releases.
	now := metav1.Now()
	ownerObj.DeletionTimestamp = &now
	patched = map[string]map[string]any{}
	got, err = Objects(context.Background(), o, pods, patch, nil)
	if err != nil || len(got) != 1 || len(patched) != 0 {
		t.Fatalf("deleted owner: owned %d, patched %v, err %v", len(got), patched, err)
	}
}
