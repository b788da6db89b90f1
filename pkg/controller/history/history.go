// Package history keeps the ControllerRevisions of a workload controller
// (StatefulSet, DaemonSet), as upstream's controller history does: a
// revision holds a pod template as the strategic merge patch that puts it
// back (`{"spec":{"template":{...,"$patch":"replace"}}}`, what
// `kubectl rollout undo` applies), is named `<owner>-<hash>`, and carries
// an increasing revision number; equal templates share one revision.
package history

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

// maxNameLength bounds a revision's name, leaving room for the hash
// (upstream's limit for names that become label values).
const maxNameLength = 63

// Patch is the revision data of template: the strategic merge patch that
// restores it on the owner.
func Patch(template *corev1.PodTemplateSpec) (runtime.RawExtension, error) {
	raw, err := json.Marshal(template)
	if err != nil {
		return runtime.RawExtension{}, fmt.Errorf("encode pod template: %w", err)
	}
	var t map[string]any
	if err := json.Unmarshal(raw, &t); err != nil {
		return runtime.RawExtension{}, err
	}
	t["$patch"] = "replace"
	raw, err = json.Marshal(map[string]any{"spec": map[string]any{"template": t}})
	if err != nil {
		return runtime.RawExtension{}, err
	}
	return runtime.RawExtension{Raw: raw}, nil
}

// Template decodes the pod template a revision holds.
func Template(rev *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(rev.Data.Raw, &data); err != nil {
		return nil, fmt.Errorf("decode revision %s: %w", rev.Name, err)
	}
	return &data.Spec.Template, nil
}

// Hash is the hash that names a revision of data; a non-nil collision
// count perturbs it, to step past a name taken by other data.
func Hash(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	h.Write(data)
	if collisionCount != nil {
		h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Name is the name of the owner's revision with hash.
func Name(owner, hash string) string {
	if len(owner) > maxNameLength-1-len(hash) {
		owner = owner[:maxNameLength-1-len(hash)]
	}
	return owner + "-" + hash
}

// New returns owner's revision holding data with number revision; the
// revision has the owner's template labels, and its controller reference.
func New(owner metav1.Object, kind schema.GroupVersionKind, templateLabels map[string]string, data runtime.RawExtension, revision int64, collisionCount *int32) *appsv1.ControllerRevision {
	hash := Hash(data.Raw, collisionCount)
	lbls := make(map[string]string, len(templateLabels)+1)
	for k, v := range templateLabels {
		lbls[k] = v
	}
	lbls[appsv1.ControllerRevisionHashLabelKey] = hash
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            Name(owner.GetName(), hash),
			Namespace:       owner.GetNamespace(),
			Labels:          lbls,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, kind)},
		},
		Data:     data,
		Revision: revision,
	}
}

// Equal reports whether two revisions hold the same template.
func Equal(a, b *appsv1.ControllerRevision) bool { return bytes.Equal(a.Data.Raw, b.Data.Raw) }

// Sort orders revisions oldest first (by number, then name).
func Sort(revs []*appsv1.ControllerRevision) {
	slices.SortFunc(revs, func(a, b *appsv1.ControllerRevision) int {
		return cmp.Or(cmp.Compare(a.Revision, b.Revision), cmp.Compare(a.Name, b.Name))
	})
}

// Next is the revision number after the newest of revs (sorted).
func Next(revs []*appsv1.ControllerRevision) int64 {
	if len(revs) == 0 {
		return 1
	}
	return revs[len(revs)-1].Revision + 1
}

// Store writes revisions through the API.
type Store struct{ Client kubernetes.Interface }

// Create creates rev, stepping *collisionCount past names that hold
// other data; it returns the stored revision, which is an existing one
// when an equal revision already has rev's name. The caller persists a
// changed collision count in the owner's status.
func (s Store) Create(ctx context.Context, owner metav1.Object, kind schema.GroupVersionKind, templateLabels map[string]string, data runtime.RawExtension, revision int64, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	for {
		rev := New(owner, kind, templateLabels, data, revision, collisionCount)
		created, err := s.Client.AppsV1().ControllerRevisions(rev.Namespace).Create(ctx, rev, metav1.CreateOptions{})
		if err == nil {
			return created, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create revision %s: %w", rev.Name, err)
		}
		existing, err := s.Client.AppsV1().ControllerRevisions(rev.Namespace).Get(ctx, rev.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get revision %s: %w", rev.Name, err)
		}
		if ref := metav1.GetControllerOf(existing); ref != nil && ref.UID == owner.GetUID() && Equal(existing, rev) {
			return existing, nil
		}
		*collisionCount++
	}
}

// Renumber gives rev the number revision (making an old template the
// newest again).
func (s Store) Renumber(ctx context.Context, rev *appsv1.ControllerRevision, revision int64) (*appsv1.ControllerRevision, error) {
	if rev.Revision == revision {
		return rev, nil
	}
	c := rev.DeepCopy()
	c.Revision = revision
	updated, err := s.Client.AppsV1().ControllerRevisions(c.Namespace).Update(ctx, c, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("renumber revision %s: %w", rev.Name, err)
	}
	return updated, nil
}

// Truncate deletes the oldest revisions (of revs, sorted) beyond limit,
// sparing those named in live.
func (s Store) Truncate(ctx context.Context, revs []*appsv1.ControllerRevision, live map[string]bool, limit int32) error {
	var dead []*appsv1.ControllerRevision
	for _, r := range revs {
		if !live[r.Name] {
			dead = append(dead, r)
		}
	}
	excess := len(dead) - int(max(limit, 0))
	for _, r := range dead[:max(excess, 0)] {
		err := s.Client.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &r.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete revision %s: %w", r.Name, err)
		}
	}
	return nil
}

// ForTemplate returns owner's revision of template, given its revisions
// revs (sorted): an equal one, renumbered to be the newest if it is not,
// or a new one.
func (s Store) ForTemplate(ctx context.Context, owner metav1.Object, kind schema.GroupVersionKind, template *corev1.PodTemplateSpec, revs []*appsv1.ControllerRevision, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	data, err := Patch(template)
	if err != nil {
		return nil, err
	}
	probe := &appsv1.ControllerRevision{Data: data}
	var equal *appsv1.ControllerRevision
	for _, r := range revs {
		if Equal(r, probe) {
			equal = r
		}
	}
	switch {
	case equal == nil:
		return s.Create(ctx, owner, kind, template.Labels, data, Next(revs), collisionCount)
	case equal != revs[len(revs)-1]:
		return s.Renumber(ctx, equal, Next(revs))
	}
	return equal, nil
}
