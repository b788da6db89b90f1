// Package registry turns API requests into storage operations for every
// resource skiff serves.
//
// A Resource describes one API resource (its group, version, kind, scope,
// subresources and table columns) and carries a Strategy, the per-resource
// policy that defaults, validates and prepares objects; the strategies live
// in pkg/registry/<resource>. Store applies the semantics every resource
// shares: names and generateName, uid and timestamps, resourceVersion
// preconditions, generation, graceful deletion, finalizers and propagation
// policies, admission, dry run, and the mapping of storage errors to
// metav1.Status errors.
//
// The HTTP layer (pkg/apiserver) decodes requests, calls Store, and encodes
// what it returns; it knows nothing about individual resources.
package registry
