// Package apiserver serves the Kubernetes REST API over HTTPS.
//
// It owns the HTTP plumbing shared by every resource: URL parsing,
// authentication, content negotiation (JSON, YAML, protobuf, Tables and
// metadata-only responses), request decoding with field validation, patches
// (JSON, merge and strategic merge), watch streaming, the status and scale
// subresources, discovery (legacy and aggregated), health endpoints and
// errors shaped as metav1.Status. Everything resource-specific lives in the
// registry (pkg/registry) whose Stores it calls.
package apiserver
