package registry

import (
	"context"
	"net/http"
	"net/url"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource describes one served API resource.
type Resource struct {
	// GroupVersionResource names the resource (resource is plural, lower case).
	schema.GroupVersionResource
	// Kind is the object kind; the list kind is Kind+"List".
	Kind string
	// SingularName is the lower-case singular name used by kubectl.
	SingularName string
	ShortNames   []string
	// Categories group resources for kubectl ("all").
	Categories []string
	Namespaced bool
	// New and NewList return empty objects of the resource's types.
	New     func() runtime.Object
	NewList func() runtime.Object
	// StoragePrefix is the etcd prefix, "/registry/<resource>" by default;
	// resources served under two groups (events) share one prefix.
	StoragePrefix string
	// Strategy is the resource's create/update/delete policy.
	Strategy Strategy
	// Status, when not nil, serves the status subresource.
	Status StatusStrategy
	// Scale, when not nil, serves the scale subresource.
	Scale *ScaleSubresource
	// Table lists the columns kubectl shows; nil gives NAME and AGE.
	Table *TableColumns
	// Fields returns the object's selectable fields beyond metadata.name and
	// metadata.namespace, which every resource supports.
	Fields func(obj runtime.Object) fields.Set
	// Generation makes the server keep metadata.generation, bumped on every
	// change outside metadata and status.
	Generation bool
	// ReturnDeletedObject answers DELETE with the object rather than a Status.
	ReturnDeletedObject bool
	// Verbs limits the verbs served; nil serves all of them.
	Verbs []string
	// Subresources lists extra subresource names served by the HTTP layer
	// (binding, eviction, log, exec, ...) for discovery.
	Subresources []Subresource
}

// Subresource describes an extra subresource and how to serve it.
type Subresource struct {
	Name string
	// Kind, Group and Version name the subresource's kind for discovery
	// (Group and Version empty mean the parent's).
	Kind    string
	Group   string
	Version string
	Verbs   []string
	// New returns an empty request body for Create.
	New func() runtime.Object
	// Create serves POST with the decoded body (binding, eviction).
	Create func(ctx context.Context, ns, name string, body runtime.Object, dryRun bool) (runtime.Object, error)
	// Connect serves a streaming subresource (log, exec, attach,
	// portforward): it returns the handler that talks to the client.
	Connect func(ctx context.Context, ns, name string, opts url.Values) (http.Handler, error)
	// TakesPath says the subresource takes a trailing path
	// (pods/NAME/proxy/PATH): the API server passes it to Connect as the
	// "path" option.
	TakesPath bool
	// Update serves PUT of the whole object through the subresource
	// (namespaces/finalize); it is given the decoded object.
	Update func(ctx context.Context, name string, obj runtime.Object, dryRun bool) (runtime.Object, error)
}

// GroupVersionKind returns the resource's kind in its group version.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion().WithKind(r.Kind)
}

// AllVerbs are the verbs of a resource with no Verbs restriction.
var AllVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// ServedVerbs returns the verbs the resource serves.
func (r *Resource) ServedVerbs() []string {
	if r.Verbs != nil {
		return r.Verbs
	}
	return AllVerbs
}

// Serves reports whether the resource serves verb.
func (r *Resource) Serves(verb string) bool {
	for _, v := range r.ServedVerbs() {
		if v == verb {
			return true
		}
	}
	return false
}

// Strategy is a resource's policy for writes. Implementations embed
// DefaultStrategy and override what they need.
type Strategy interface {
	// Default fills omitted fields, as upstream's defaulting functions do
	// when a request is decoded.
	Default(obj runtime.Object)
	// PrepareForCreate clears what users may not set (status) and sets what
	// the server owns.
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// Validate checks a new object (metadata is validated by Store).
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList
	// PrepareForUpdate keeps what a main-resource update may not change
	// (status, for resources that have a status subresource).
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	// ValidateUpdate checks an update, immutable fields included.
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// NameValidation says whether the name must be a DNS subdomain (the
	// default), a DNS label, or satisfy a custom rule.
	NameValidation() NameRule
	// AllowCreateOnUpdate lets PUT create a missing object.
	AllowCreateOnUpdate() bool
	// AllowUnconditionalUpdate lets PUT omit metadata.resourceVersion.
	AllowUnconditionalUpdate() bool
}

// NameRule validates a metadata.name; it returns messages as apimachinery's
// name validators do.
type NameRule func(name string, prefix bool) []string

// StatusStrategy is the policy of the status subresource.
type StatusStrategy interface {
	// PrepareForUpdate copies everything but status from old into obj.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	// ValidateUpdate checks the new status.
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
}

// GracefulDeleter is implemented by strategies of resources whose deletion
// is graceful (pods): the object gets a deletionTimestamp and is removed
// later by whoever runs it.
type GracefulDeleter interface {
	// GracePeriod returns the grace period to apply, given the object and the
	// delete options, and whether deletion should be graceful at all.
	GracePeriod(obj runtime.Object, opts *metav1.DeleteOptions) (seconds int64, graceful bool)
}

// Reserver is implemented by strategies whose objects hold unique
// allocations (ClusterIPs, NodePorts) kept as reservation keys that are
// created and released atomically with the object.
type Reserver interface {
	// Allocate fills unset allocatable fields of a new object (or of an
	// update, with old set) and returns nothing; it may consult existing
	// reservations through exists.
	Allocate(ctx context.Context, obj, old runtime.Object, exists func(key string) (bool, error)) error
	// Reservations returns the reservation keys obj holds.
	Reservations(obj runtime.Object) []string
}

// GarbageCollectionPolicy says what deletion does to dependents when the
// client gives no propagationPolicy.
type GarbageCollectionPolicy string

// The GarbageCollectionPolicy values.
const (
	DeleteDependents GarbageCollectionPolicy = "DeleteDependents"
	OrphanDependents GarbageCollectionPolicy = "OrphanDependents"
)

// GCPolicyer is implemented by strategies whose default propagation differs
// from background deletion of dependents.
type GCPolicyer interface {
	DefaultGarbageCollectionPolicy() GarbageCollectionPolicy
}

// Deleter is implemented by strategies that take over deletion entirely
// (namespaces, which first move to Terminating).
type Deleter interface {
	// BeforeDelete may mutate the object and return true to store it instead
	// of deleting it (the object then stays until its finalizers are done).
	BeforeDelete(ctx context.Context, obj runtime.Object, opts *metav1.DeleteOptions) (keep bool, err error)
}

// DeletionHolder is implemented by strategies whose deleted objects are
// held by more than metadata.finalizers (namespaces: spec.finalizers), as
// upstream's ShouldDeleteDuringUpdate: an update of a deleted object with
// no finalizers left removes it only when the strategy no longer holds it.
type DeletionHolder interface {
	HoldsDeletion(obj runtime.Object) bool
}

// DefaultStrategy implements Strategy with no defaults, no extra validation,
// DNS-subdomain names and unconditional updates allowed.
type DefaultStrategy struct{}

// Default implements Strategy.
func (DefaultStrategy) Default(runtime.Object) {}

// PrepareForCreate implements Strategy.
func (DefaultStrategy) PrepareForCreate(context.Context, runtime.Object) {}

// Validate implements Strategy.
func (DefaultStrategy) Validate(context.Context, runtime.Object) field.ErrorList { return nil }

// PrepareForUpdate implements Strategy.
func (DefaultStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

// ValidateUpdate implements Strategy.
func (DefaultStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}

// NameValidation implements Strategy.
func (DefaultStrategy) NameValidation() NameRule { return nil }

// AllowCreateOnUpdate implements Strategy.
func (DefaultStrategy) AllowCreateOnUpdate() bool { return false }

// AllowUnconditionalUpdate implements Strategy.
func (DefaultStrategy) AllowUnconditionalUpdate() bool { return true }

// ScaleSubresource maps a resource's replicas to autoscaling/v1 Scale.
type ScaleSubresource struct {
	// Replicas returns spec.replicas, status.replicas and the label selector
	// (as a string) of obj.
	Get func(obj runtime.Object) (specReplicas, statusReplicas int32, selector string)
	// SetReplicas sets spec.replicas.
	SetReplicas func(obj runtime.Object, replicas int32)
}

// TableColumns describes how kubectl prints a resource.
type TableColumns struct {
	// Columns are the table's columns, usually NAME first; a column with
	// Priority 1 shows only with -o wide.
	Columns []metav1.TableColumnDefinition
	// Row returns obj's cells, one per column, given the current time for
	// ages.
	Row func(obj runtime.Object, now time.Time) []interface{}
}
