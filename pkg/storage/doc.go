// Package storage defines the seam between the API server's registries and
// the datastore that holds every API object.
//
// A Store keeps typed objects (k8s.io/api structs) under string keys such as
// "/registry/pods/default/nginx". Its resourceVersion is the datastore's
// revision: every write returns the object stamped with the revision that
// stored it, updates are compare-and-swap on that revision, and watches resume
// from any revision still in the datastore's history.
//
// The only implementation is etcd3 (package storage/etcd3), used both for the
// embedded etcd that `skiff server` starts by default and for an external etcd
// cluster given with --datastore-endpoint.
package storage
