package registry

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/storage"
)

// Operation names a write for admission.
type Operation string

// The admission operations.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
)

// Attributes describe a write to admission plugins.
type Attributes struct {
	Operation   Operation
	Resource    *Resource
	Subresource string
	Namespace   string
	Name        string
	// Object is the new state (nil for DELETE), OldObject the stored one
	// (nil for CREATE).
	Object, OldObject runtime.Object
	DryRun            bool
}

// Admitter checks (and may mutate) a write before it is stored.
type Admitter interface {
	Admit(ctx context.Context, a *Attributes) error
}

// Mutator marks an Admitter that changes the objects it admits (as
// LimitRanger's defaults). Mutators run before validation, so that what
// they set is validated, as upstream's mutating admission does; the other
// admitters run after it, on the object that will be stored.
type Mutator interface {
	Admitter
	Mutates()
}

// AdmitFunc adapts a function to Admitter.
type AdmitFunc func(ctx context.Context, a *Attributes) error

// Admit implements Admitter.
func (f AdmitFunc) Admit(ctx context.Context, a *Attributes) error { return f(ctx, a) }

// Store serves one Resource from a storage.Store.
type Store struct {
	Resource *Resource
	Storage  storage.Store
	// Clock stamps creation and deletion times.
	Clock clock.PassiveClock
	// Admission runs, in order, on every write.
	Admission []Admitter
	// NameSuffix returns the random suffix appended to generateName.
	NameSuffix func() string
	// NewUID returns a new object uid.
	NewUID func() types.UID

	fieldKeys map[string]bool
}

// NewStore returns a Store for res with the real clock, uid and name
// generators.
func NewStore(res *Resource, st storage.Store, admission ...Admitter) *Store {
	s := &Store{
		Resource:   res,
		Storage:    st,
		Clock:      clock.RealClock{},
		Admission:  admission,
		NameSuffix: func() string { return utilrand.String(5) },
		NewUID:     uuid.NewUUID,
	}
	s.fieldKeys = map[string]bool{"metadata.name": true}
	if res.Namespaced {
		s.fieldKeys["metadata.namespace"] = true
	}
	if res.Fields != nil {
		for k := range res.Fields(res.New()) {
			s.fieldKeys[k] = true
		}
	}
	return s
}

// GroupResource returns the qualified resource name for errors.
func (s *Store) groupResource() schema.GroupResource {
	return s.Resource.GroupResource()
}

// Prefix returns the storage prefix of the resource.
func (s *Store) Prefix() string { return StoragePrefix(s.Resource) }

// StoragePrefix returns where res is stored: "/registry/<resource>" for
// core resources, "/registry/<group>/<resource>" for the others, unless the
// resource names its own prefix.
func StoragePrefix(res *Resource) string {
	if res.StoragePrefix != "" {
		return res.StoragePrefix
	}
	if res.Group == "" {
		return "/registry/" + res.Resource
	}
	return "/registry/" + res.Group + "/" + res.Resource
}

func (s *Store) key(ns, name string) string {
	if s.Resource.Namespaced {
		return s.Prefix() + "/" + ns + "/" + name
	}
	return s.Prefix() + "/" + name
}

func (s *Store) listPrefix(ns string) string {
	if s.Resource.Namespaced && ns != "" {
		return s.Prefix() + "/" + ns + "/"
	}
	return s.Prefix() + "/"
}

// Get returns the named object.
func (s *Store) Get(ctx context.Context, ns, name string, opts *metav1.GetOptions) (runtime.Object, error) {
	out := s.Resource.New()
	err := s.Storage.Get(ctx, s.key(ns, name), storage.GetOptions{ResourceVersion: opts.ResourceVersion}, out)
	if err != nil {
		return nil, s.apiError(err, name)
	}
	return out, nil
}

// Predicate builds the storage predicate for label and field selectors,
// rejecting field labels the resource does not support as upstream does.
func (s *Store) Predicate(labelSelector, fieldSelector string) (storage.Predicate, error) {
	p := storage.Predicate{Label: labels.Everything(), Field: fields.Everything(), GetAttrs: s.attrs}
	if labelSelector != "" {
		sel, err := labels.Parse(labelSelector)
		if err != nil {
			return p, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
		p.Label = sel
	}
	if fieldSelector != "" {
		sel, err := fields.ParseSelector(fieldSelector)
		if err != nil {
			return p, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
		for _, r := range sel.Requirements() {
			if !s.fieldKeys[r.Field] {
				return p, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", r.Field))
			}
		}
		p.Field = sel
	}
	return p, nil
}

func (s *Store) attrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	f := fields.Set{"metadata.name": acc.GetName()}
	if s.Resource.Namespaced {
		f["metadata.namespace"] = acc.GetNamespace()
	}
	if s.Resource.Fields != nil {
		for k, v := range s.Resource.Fields(obj) {
			f[k] = v
		}
	}
	return labels.Set(acc.GetLabels()), f, nil
}

// List returns the objects in ns (all namespaces when ns is "") matching
// the options' selectors.
func (s *Store) List(ctx context.Context, ns string, opts *metav1.ListOptions) (runtime.Object, error) {
	p, err := s.Predicate(opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		return nil, err
	}
	if opts.ResourceVersionMatch != "" && opts.ResourceVersion == "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", field.ErrorList{
			field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden unless resourceVersion is provided")})
	}
	if opts.Continue != "" && opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", field.ErrorList{
			field.Forbidden(field.NewPath("resourceVersion"), "specifying resource version is not allowed when using continue")})
	}
	list := s.Resource.NewList()
	err = s.Storage.List(ctx, s.listPrefix(ns), storage.ListOptions{
		Predicate:            p,
		ResourceVersion:      opts.ResourceVersion,
		ResourceVersionMatch: storage.ResourceVersionMatch(opts.ResourceVersionMatch),
		Limit:                opts.Limit,
		Continue:             opts.Continue,
	}, list)
	if err != nil {
		return nil, s.apiError(err, "")
	}
	return list, nil
}

// Watch streams changes to objects in ns matching the options.
func (s *Store) Watch(ctx context.Context, ns string, opts *metav1.ListOptions) (watch.Interface, error) {
	p, err := s.Predicate(opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		return nil, err
	}
	key, recursive := s.listPrefix(ns), true
	// A watch of one object by name needs only that key.
	if name, ok := p.Field.RequiresExactMatch("metadata.name"); ok && (ns != "" || !s.Resource.Namespaced) {
		key, recursive = s.key(ns, name), false
	}
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents && !opts.AllowWatchBookmarks {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", field.ErrorList{
			field.Forbidden(field.NewPath("allowWatchBookmarks"), "allowWatchBookmarks required when sendInitialEvents is true")})
	}
	w, err := s.Storage.Watch(ctx, key, storage.WatchOptions{
		Predicate:         p,
		ResourceVersion:   opts.ResourceVersion,
		Recursive:         recursive,
		SendInitialEvents: opts.SendInitialEvents,
		Bookmarks:         opts.AllowWatchBookmarks,
		NewObject:         s.Resource.New,
	})
	if err != nil {
		return nil, s.apiError(err, "")
	}
	return w, nil
}

// CreateOptions carry what Create needs beyond the object.
type CreateOptions struct {
	DryRun bool
}

// Create stores a new object in ns.
func (s *Store) Create(ctx context.Context, ns string, obj runtime.Object, opts CreateOptions) (runtime.Object, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := s.checkNamespace(acc, ns); err != nil {
		return nil, err
	}
	if acc.GetName() == "" && acc.GetGenerateName() != "" {
		acc.SetName(acc.GetGenerateName() + s.NameSuffix())
	}
	if acc.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	acc.SetUID(s.NewUID())
	acc.SetCreationTimestamp(metav1.NewTime(s.Clock.Now().Truncate(1e9)))
	acc.SetDeletionTimestamp(nil)
	acc.SetDeletionGracePeriodSeconds(nil)
	acc.SetSelfLink("")
	acc.SetManagedFields(nil)
	if s.Resource.Generation {
		acc.SetGeneration(1)
	} else {
		acc.SetGeneration(0)
	}
	strat := s.Resource.Strategy
	strat.Default(obj)
	strat.PrepareForCreate(ctx, obj)
	attrs := &Attributes{Operation: Create, Resource: s.Resource, Namespace: ns, Name: acc.GetName(), Object: obj, DryRun: opts.DryRun}
	if err := s.admit(ctx, attrs, true); err != nil {
		return nil, err
	}
	errs := s.validateMeta(acc)
	errs = append(errs, strat.Validate(ctx, obj)...)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(s.Resource.GroupVersionKind().GroupKind(), acc.GetName(), errs)
	}
	if err := s.admit(ctx, attrs, false); err != nil {
		return nil, err
	}
	reserver, _ := strat.(Reserver)
	if reserver != nil {
		// A duplicate must be AlreadyExists, not a conflict over the
		// allocations the existing object holds.
		if ok, err := s.Storage.KeyExists(ctx, s.key(ns, acc.GetName())); err != nil {
			return nil, s.apiError(err, acc.GetName())
		} else if ok {
			return nil, apierrors.NewAlreadyExists(s.groupResource(), acc.GetName())
		}
	}
	original := obj
	for attempt := 0; ; attempt++ {
		var reservations []string
		if reserver != nil {
			obj = original.DeepCopyObject()
			if err := reserver.Allocate(ctx, obj, nil, s.exists(ctx)); err != nil {
				return nil, err
			}
			reservations = reserver.Reservations(obj)
		}
		if opts.DryRun {
			return obj, nil
		}
		out := s.Resource.New()
		err = s.Storage.Create(ctx, s.key(ns, acc.GetName()), obj, reservations, out)
		if storage.IsCode(err, storage.ErrCodeReservationTaken) && attempt < 8 {
			continue
		}
		if err != nil {
			return nil, s.apiError(err, acc.GetName())
		}
		return out, nil
	}
}

func (s *Store) exists(ctx context.Context) func(string) (bool, error) {
	return func(key string) (bool, error) { return s.Storage.KeyExists(ctx, key) }
}

func (s *Store) checkNamespace(acc metav1.Object, ns string) error {
	if !s.Resource.Namespaced {
		acc.SetNamespace("")
		return nil
	}
	if acc.GetNamespace() == "" {
		acc.SetNamespace(ns)
	} else if acc.GetNamespace() != ns {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

func (s *Store) validateMeta(acc metav1.Object) field.ErrorList {
	return apivalidation.ValidateObjectMetaAccessor(acc, s.Resource.Namespaced, s.nameRule(), field.NewPath("metadata"))
}

func (s *Store) nameRule() apivalidation.ValidateNameFunc {
	if r := s.Resource.Strategy.NameValidation(); r != nil {
		return apivalidation.ValidateNameFunc(r)
	}
	return apivalidation.NameIsDNSSubdomain
}

// admit runs the mutating admitters, or the others.
func (s *Store) admit(ctx context.Context, a *Attributes, mutating bool) error {
	for _, ad := range s.Admission {
		if _, m := ad.(Mutator); m != mutating {
			continue
		}
		if err := ad.Admit(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// UpdatedObjectFunc computes the object a PUT or PATCH asks for from the
// stored one (nil when the object does not exist). It must not modify old.
type UpdatedObjectFunc func(ctx context.Context, old runtime.Object) (runtime.Object, error)

// UpdateOptions carry what Update needs beyond the new object.
type UpdateOptions struct {
	// Subresource is "", "status", or another subresource that updates the
	// object (namespaces/finalize).
	Subresource string
	// SubresourceStrategy prepares and validates updates through a
	// subresource other than status.
	SubresourceStrategy StatusStrategy
	DryRun              bool
	// ForceAllowCreate lets a missing object be created (apply patches).
	ForceAllowCreate bool
}

// Update replaces the named object with what newObj computes from it. It
// returns the stored object and whether it was created.
func (s *Store) Update(ctx context.Context, ns, name string, newObj UpdatedObjectFunc, opts UpdateOptions) (runtime.Object, bool, error) {
	key := s.key(ns, name)
	out := s.Resource.New()
	var dryRunResult runtime.Object
	err := s.Storage.GuaranteedUpdate(ctx, key, out, func(current runtime.Object) (runtime.Object, *storage.ReservationChange, error) {
		obj, change, err := s.prepareUpdate(ctx, ns, name, current, newObj, opts)
		if err != nil {
			return nil, nil, err
		}
		if opts.DryRun {
			dryRunResult = obj
			return nil, nil, errDryRun
		}
		return obj, change, nil
	})
	if errors.Is(err, errDryRun) {
		return dryRunResult, false, nil
	}
	if storage.IsNotFound(err) && (s.Resource.Strategy.AllowCreateOnUpdate() || opts.ForceAllowCreate) && opts.Subresource == "" {
		obj, err := newObj(ctx, nil)
		if err != nil {
			return nil, false, err
		}
		if acc, err := meta.Accessor(obj); err == nil {
			if acc.GetName() != name {
				return nil, false, apierrors.NewBadRequest("the name of the object does not match the name on the URL")
			}
			acc.SetResourceVersion("")
		}
		created, err := s.Create(ctx, ns, obj, CreateOptions{DryRun: opts.DryRun})
		return created, err == nil, err
	}
	if err != nil {
		return nil, false, s.apiError(err, name)
	}
	return out, false, nil
}

var errDryRun = errors.New("dry run")

func (s *Store) prepareUpdate(ctx context.Context, ns, name string, current runtime.Object, newObj UpdatedObjectFunc, opts UpdateOptions) (runtime.Object, *storage.ReservationChange, error) {
	old := current
	obj, err := newObj(ctx, old.DeepCopyObject())
	if err != nil {
		return nil, nil, err
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(err.Error())
	}
	oldAcc, _ := meta.Accessor(old)
	if acc.GetName() != name {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", acc.GetName(), name))
	}
	if err := s.checkNamespace(acc, ns); err != nil {
		return nil, nil, err
	}
	strat := s.Resource.Strategy
	switch rv := acc.GetResourceVersion(); {
	case rv == "" && !strat.AllowUnconditionalUpdate():
		return nil, nil, apierrors.NewInvalid(s.Resource.GroupVersionKind().GroupKind(), name, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "resourceVersion"), rv, "must be specified for an update")})
	case rv != "" && rv != oldAcc.GetResourceVersion():
		return nil, nil, apierrors.NewConflict(s.groupResource(), name, errors.New(OptimisticLockErrorMsg))
	}
	if uid := acc.GetUID(); uid != "" && uid != oldAcc.GetUID() {
		return nil, nil, apierrors.NewConflict(s.groupResource(), name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, oldAcc.GetUID()))
	}
	// Fields only the server sets.
	acc.SetUID(oldAcc.GetUID())
	acc.SetCreationTimestamp(oldAcc.GetCreationTimestamp())
	acc.SetDeletionTimestamp(oldAcc.GetDeletionTimestamp())
	acc.SetDeletionGracePeriodSeconds(oldAcc.GetDeletionGracePeriodSeconds())
	acc.SetSelfLink("")
	acc.SetManagedFields(oldAcc.GetManagedFields())
	acc.SetGeneration(oldAcc.GetGeneration())
	acc.SetResourceVersion(oldAcc.GetResourceVersion())

	var errs field.ErrorList
	sub := opts.SubresourceStrategy
	if sub == nil && opts.Subresource == "status" {
		sub = s.Resource.Status
	}
	if sub != nil {
		sub.PrepareForUpdate(ctx, obj, old)
	} else {
		strat.Default(obj)
		strat.PrepareForUpdate(ctx, obj, old)
	}
	attrs := &Attributes{Operation: Update, Resource: s.Resource, Subresource: opts.Subresource, Namespace: ns, Name: name, Object: obj, OldObject: old, DryRun: opts.DryRun}
	if err := s.admit(ctx, attrs, true); err != nil {
		return nil, nil, err
	}
	// Status strategies that let metadata through need it valid too.
	errs = s.validateMeta(acc)
	errs = append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(acc, oldAcc, field.NewPath("metadata"))...)
	if sub != nil {
		errs = append(errs, sub.ValidateUpdate(ctx, obj, old)...)
	} else {
		if s.Resource.Generation && specChanged(obj, old) {
			acc.SetGeneration(oldAcc.GetGeneration() + 1)
		}
		errs = append(errs, strat.ValidateUpdate(ctx, obj, old)...)
	}
	if len(errs) > 0 {
		return nil, nil, apierrors.NewInvalid(s.Resource.GroupVersionKind().GroupKind(), name, errs)
	}
	if err := s.admit(ctx, attrs, false); err != nil {
		return nil, nil, err
	}
	var change *storage.ReservationChange
	if reserver, ok := strat.(Reserver); ok && opts.Subresource == "" {
		if err := reserver.Allocate(ctx, obj, old, s.exists(ctx)); err != nil {
			return nil, nil, err
		}
		change = diffReservations(reserver.Reservations(old), reserver.Reservations(obj))
	}
	holder, holds := s.Resource.Strategy.(DeletionHolder)
	if g := acc.GetDeletionGracePeriodSeconds(); acc.GetDeletionTimestamp() != nil && len(acc.GetFinalizers()) == 0 && (g == nil || *g == 0) &&
		!(holds && holder.HoldsDeletion(obj)) {
		// The last finalizer is gone: the object goes. Objects in a grace
		// period (running pods) stay until whoever runs them deletes them.
		if reserver, ok := strat.(Reserver); ok {
			change = &storage.ReservationChange{Remove: reserver.Reservations(old)}
		}
		return obj, change, storage.ErrDeleteInstead
	}
	return obj, change, nil
}

func diffReservations(old, cur []string) *storage.ReservationChange {
	had := map[string]bool{}
	for _, k := range old {
		had[k] = true
	}
	c := &storage.ReservationChange{}
	for _, k := range cur {
		if had[k] {
			delete(had, k)
			continue
		}
		c.Add = append(c.Add, k)
	}
	for _, k := range old {
		if had[k] {
			c.Remove = append(c.Remove, k)
		}
	}
	return c
}

// specChanged reports whether anything outside metadata and status differs.
func specChanged(obj, old runtime.Object) bool {
	a, b := reflect.ValueOf(obj).Elem(), reflect.ValueOf(old).Elem()
	for i := 0; i < a.NumField(); i++ {
		switch a.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		if !apiequality.Semantic.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			return true
		}
	}
	return false
}

// OptimisticLockErrorMsg is upstream's message for a stale resourceVersion.
const OptimisticLockErrorMsg = "the object has been modified; please apply your changes to the latest version and try again"

// apiError maps storage errors to metav1.Status errors.
func (s *Store) apiError(err error, name string) error {
	var se *storage.Error
	if !errors.As(err, &se) {
		if _, ok := err.(apierrors.APIStatus); ok {
			return err
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return apierrors.NewTimeoutError(err.Error(), 0)
		}
		return apierrors.NewInternalError(err)
	}
	switch se.Code {
	case storage.ErrCodeNotFound:
		return apierrors.NewNotFound(s.groupResource(), name)
	case storage.ErrCodeKeyExists:
		return apierrors.NewAlreadyExists(s.groupResource(), name)
	case storage.ErrCodeConflict:
		return apierrors.NewConflict(s.groupResource(), name, errors.New(OptimisticLockErrorMsg))
	case storage.ErrCodeExpired:
		if se.Revision > 0 {
			// A watch or exact read from a revision that left history.
			return apierrors.NewResourceExpired(se.Msg)
		}
		return apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
	case storage.ErrCodeTooLargeResourceVersion:
		e := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version, current: %d", se.Revision), 1)
		e.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
		return e
	case storage.ErrCodeInvalidContinue:
		return apierrors.NewBadRequest(se.Msg)
	case storage.ErrCodeReservationTaken:
		return apierrors.NewConflict(s.groupResource(), name, fmt.Errorf("allocation %s is taken", se.Key))
	}
	return apierrors.NewInternalError(err)
}
