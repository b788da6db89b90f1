package storage

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Store is a typed key-value store with compare-and-swap updates and watch.
//
// Keys are absolute ("/registry/pods/ns/name"); list and watch take a prefix
// that ends in "/". Objects passed in are not retained; objects returned are
// owned by the caller. All methods are safe for concurrent use.
type Store interface {
	// Get reads key into out. RV selects freshness: "" reads the latest
	// revision, "0" any revision, N a revision not older than N.
	Get(ctx context.Context, key string, opts GetOptions, out runtime.Object) error

	// Create stores obj at key if nothing is stored there, together with the
	// given reservation keys, which must not exist either. On success out is
	// the stored object stamped with its resourceVersion.
	Create(ctx context.Context, key string, obj runtime.Object, reservations []string, out runtime.Object) error

	// GuaranteedUpdate reads the object at key, calls tryUpdate with it and
	// writes the result if the stored revision has not moved meanwhile,
	// retrying with the fresh object when it has. tryUpdate may return
	// ErrDeleteInstead to delete the object in the same compare-and-swap.
	GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, tryUpdate UpdateFunc) error

	// Delete removes the object at key, and the reservations opts names for
	// it, if opts.Precondition (which may be nil) accepts the current object;
	// out receives the last stored state.
	Delete(ctx context.Context, key string, out runtime.Object, opts DeleteOptions) error

	// List reads the objects under prefix that match opts.Predicate into
	// listObj, a pointer to a *List type, honouring limit/continue.
	List(ctx context.Context, prefix string, opts ListOptions, listObj runtime.Object) error

	// Watch streams changes under key (a prefix when opts.Recursive) after
	// opts.ResourceVersion. See WatchOptions.
	Watch(ctx context.Context, key string, opts WatchOptions) (watch.Interface, error)

	// Count returns how many keys lie under prefix.
	Count(ctx context.Context, prefix string) (int64, error)

	// CurrentRevision returns the datastore's latest revision.
	CurrentRevision(ctx context.Context) (int64, error)

	// KeyExists reports whether a key (an object or a reservation) exists.
	KeyExists(ctx context.Context, key string) (bool, error)
}

// SuggestingUpdater is a Store whose GuaranteedUpdate can start from a
// private copy of the object (suggestion) instead of reading it, retrying
// with the stored object when the copy turns out stale.
type SuggestingUpdater interface {
	GuaranteedUpdateFrom(ctx context.Context, key string, out runtime.Object, tryUpdate UpdateFunc, suggestion runtime.Object) error
}

// UpdateFunc computes the new state of an object from its current state. It
// may be called several times; it must not retain current. It may return the
// same object after modifying it in place.
type UpdateFunc func(current runtime.Object) (updated runtime.Object, reservations *ReservationChange, err error)

// ReservationChange lists reservation keys an update adds and removes in the
// same transaction as the object write.
type ReservationChange struct {
	Add    []string
	Remove []string
}

// ErrDeleteInstead, returned by an UpdateFunc, asks GuaranteedUpdate to delete
// the object (compare-and-swap on the revision that was read) instead of
// writing it. The returned object, if any, is the final state reported.
var ErrDeleteInstead = errors.New("delete instead of update")

// DeleteOptions control Delete.
type DeleteOptions struct {
	// Precondition, when set, must accept the current object.
	Precondition func(current runtime.Object) error
	// Reservations returns the reservation keys held by the object, which
	// are released in the same transaction.
	Reservations func(current runtime.Object) []string
}

// GetOptions selects the revision a Get may be served from.
type GetOptions struct {
	// ResourceVersion: "" latest, "0" any, "N" not older than N.
	ResourceVersion string
	// IgnoreNotFound makes a missing key yield a zero object instead of an error.
	IgnoreNotFound bool
}

// Predicate selects objects by labels and fields.
type Predicate struct {
	Label labels.Selector
	Field fields.Selector
	// GetAttrs returns an object's labels and selectable fields; required
	// whenever Label or Field is not Everything.
	GetAttrs func(obj runtime.Object) (labels.Set, fields.Set, error)
}

// Empty reports whether the predicate matches everything.
func (p Predicate) Empty() bool {
	return (p.Label == nil || p.Label.Empty()) && (p.Field == nil || p.Field.Empty())
}

// Matches reports whether obj satisfies the predicate.
func (p Predicate) Matches(obj runtime.Object) (bool, error) {
	if p.Empty() {
		return true, nil
	}
	l, f, err := p.GetAttrs(obj)
	if err != nil {
		return false, err
	}
	if p.Label != nil && !p.Label.Matches(l) {
		return false, nil
	}
	if p.Field != nil && !p.Field.Matches(f) {
		return false, nil
	}
	return true, nil
}

// ResourceVersionMatch mirrors metav1.ResourceVersionMatch for lists.
type ResourceVersionMatch string

// The list ResourceVersionMatch values.
const (
	MatchNotOlderThan ResourceVersionMatch = "NotOlderThan"
	MatchExact        ResourceVersionMatch = "Exact"
)

// ListOptions control List.
type ListOptions struct {
	Predicate            Predicate
	ResourceVersion      string
	ResourceVersionMatch ResourceVersionMatch
	// Limit caps the number of items returned (0 = no limit).
	Limit int64
	// Continue is the opaque token of a previous page.
	Continue string
}

// WatchOptions control Watch.
type WatchOptions struct {
	Predicate Predicate
	// ResourceVersion: "" or "0" first sends the current state as ADDED
	// events; "N" streams changes after revision N.
	ResourceVersion string
	// Recursive watches every key under the prefix key.
	Recursive bool
	// SendInitialEvents forces (true) or suppresses (false) the initial
	// ADDED events regardless of ResourceVersion; nil keeps the default.
	SendInitialEvents *bool
	// Bookmarks asks for periodic BOOKMARK events carrying the latest revision.
	Bookmarks bool
	// NewObject returns an empty object of the watched type, used for
	// BOOKMARK events.
	NewObject func() runtime.Object
}

// ErrorCode classifies storage errors so callers can map them to API errors.
type ErrorCode int

// Storage error codes.
const (
	ErrCodeNotFound ErrorCode = iota + 1
	ErrCodeKeyExists
	ErrCodeConflict
	ErrCodeExpired
	ErrCodeTooLargeResourceVersion
	ErrCodeInvalidContinue
	ErrCodeReservationTaken
	ErrCodeUnavailable
)

// Error is a storage failure with a code saying what the caller should do.
type Error struct {
	Code ErrorCode
	Key  string
	// Revision is the current revision for Expired and TooLarge errors.
	Revision int64
	Msg      string
	Err      error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Key, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// IsCode reports whether err is a storage Error with the given code.
func IsCode(err error, code ErrorCode) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == code
}

// IsNotFound reports whether err says the key does not exist.
func IsNotFound(err error) bool { return IsCode(err, ErrCodeNotFound) }

// IsConflict reports whether err says the object changed since it was read.
func IsConflict(err error) bool { return IsCode(err, ErrCodeConflict) }
