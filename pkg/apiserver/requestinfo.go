package apiserver

import (
	"net/http"
	"strings"
)

// requestInfo is what the URL and method of a resource request say.
type requestInfo struct {
	// IsResource is false for discovery, health and other non-resource paths.
	IsResource  bool
	Group       string
	Version     string
	Namespace   string
	Resource    string
	Name        string
	Subresource string
	// Verb is get, list, watch, create, update, patch, delete,
	// deletecollection, or connect-style subresource verbs (get, create).
	Verb string
	// Parts are the path segments after /api or /apis.
	Parts []string
}

// namespaceSubresources are subresources of the namespace object itself, so
// /namespaces/x/status is not "the resource status in namespace x".
var namespaceSubresources = map[string]bool{"status": true, "finalize": true}

// parseRequestInfo follows upstream's RequestInfoFactory rules.
func parseRequestInfo(r *http.Request) *requestInfo {
	ri := &requestInfo{}
	path := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(path, "/")
	switch {
	case len(parts) >= 1 && parts[0] == "api":
		ri.Parts = parts[1:]
		if len(parts) < 3 {
			return ri
		}
		ri.Version = parts[1]
		parts = parts[2:]
	case len(parts) >= 1 && parts[0] == "apis":
		ri.Parts = parts[1:]
		if len(parts) < 4 {
			return ri
		}
		ri.Group, ri.Version = parts[1], parts[2]
		parts = parts[3:]
	default:
		return ri
	}
	ri.IsResource = true
	if parts[0] == "namespaces" && len(parts) > 1 {
		ri.Namespace = parts[1]
		if len(parts) > 2 && !namespaceSubresources[parts[2]] {
			parts = parts[2:]
		}
	}
	ri.Resource = parts[0]
	if len(parts) > 1 {
		ri.Name = parts[1]
	}
	if len(parts) > 2 {
		ri.Subresource = strings.Join(parts[2:], "/")
	}
	if ri.Resource == "namespaces" && len(parts) > 1 {
		// The namespace object itself.
		ri.Namespace = ""
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case ri.Name == "" && isTrue(q.Get("watch")):
			ri.Verb = "watch"
		case ri.Name == "":
			ri.Verb = "list"
		default:
			ri.Verb = "get"
		}
	case http.MethodPost:
		ri.Verb = "create"
	case http.MethodPut:
		ri.Verb = "update"
	case http.MethodPatch:
		ri.Verb = "patch"
	case http.MethodDelete:
		if ri.Name == "" {
			ri.Verb = "deletecollection"
		} else {
			ri.Verb = "delete"
		}
	default:
		ri.Verb = strings.ToLower(r.Method)
	}
	return ri
}

func isTrue(s string) bool { return s == "true" || s == "1" }
