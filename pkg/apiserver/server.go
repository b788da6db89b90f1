package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/apiserver/auth"
	"github.com/skiff/skiff/pkg/registry"
)

// Config assembles a Server.
type Config struct {
	// Stores serve the resources, one per resource and version.
	Stores []*registry.Store
	// Authenticator identifies the caller of every request.
	Authenticator auth.Authenticator
	// Version is served at /version.
	Version version.Info
	// Ready reports whether the server may take traffic (/readyz).
	Ready func(ctx context.Context) error
	// OpenAPI, when set, serves /openapi/v2 and /openapi/v3.
	OpenAPI http.Handler
	// Handlers serve extra paths outside the API (exact match), after
	// authentication: the node join endpoints.
	Handlers map[string]http.Handler
	// ExternalAddress is host:port clients use, advertised by /api.
	ExternalAddress string
	// Clock is used for ages in tables; the real clock when nil.
	Clock clock.PassiveClock
	Log   *slog.Logger
}

// Server is the API server's HTTP handler.
type Server struct {
	cfg    Config
	clock  clock.PassiveClock
	log    *slog.Logger
	stores map[schema.GroupVersionResource]*registry.Store
	// groups lists the served groups in discovery order.
	groups []groupInfo
	// discovery documents are computed once; resources never change at run time.
	disc *discoveryDocs
}

type groupInfo struct {
	name     string
	versions []string
}

// groupOrder is upstream's discovery order for the groups skiff serves;
// kubectl uses it to choose between same-named resources in two groups.
var groupOrder = []string{"", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "flowcontrol.apiserver.k8s.io"}

// New builds a Server.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, clock: cfg.Clock, log: cfg.Log, stores: map[schema.GroupVersionResource]*registry.Store{}}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	versions := map[string][]string{}
	for _, st := range cfg.Stores {
		gvr := st.Resource.GroupVersionResource
		if _, dup := s.stores[gvr]; dup {
			return nil, fmt.Errorf("resource %v registered twice", gvr)
		}
		s.stores[gvr] = st
		vs := versions[gvr.Group]
		found := false
		for _, v := range vs {
			found = found || v == gvr.Version
		}
		if !found {
			versions[gvr.Group] = append(vs, gvr.Version)
		}
	}
	rank := map[string]int{}
	for i, g := range groupOrder {
		rank[g] = i + 1
	}
	for g, vs := range versions {
		s.groups = append(s.groups, groupInfo{name: g, versions: vs})
	}
	sort.Slice(s.groups, func(i, j int) bool {
		ri, rj := rank[s.groups[i].name], rank[s.groups[j].name]
		if ri == 0 {
			ri = len(groupOrder) + 1
		}
		if rj == 0 {
			rj = len(groupOrder) + 1
		}
		if ri != rj {
			return ri < rj
		}
		return s.groups[i].name < s.groups[j].name
	})
	s.disc = s.buildDiscovery()
	return s, nil
}

// ServeHTTP authenticates the request and dispatches it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Authenticator != nil {
		user, ok, err := s.cfg.Authenticator.AuthenticateRequest(r)
		if err != nil || !ok {
			writeError(w, r, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		r = r.WithContext(auth.WithUser(r.Context(), user))
	}
	r = withWarnings(w, r, s.log)
	path := r.URL.Path
	switch {
	case path == "/version" || path == "/version/":
		writeRawJSON(w, http.StatusOK, s.cfg.Version)
		return
	case path == "/healthz" || path == "/livez" || strings.HasPrefix(path, "/healthz/") || strings.HasPrefix(path, "/livez/"):
		writeText(w, http.StatusOK, "ok")
		return
	case path == "/readyz" || strings.HasPrefix(path, "/readyz/"):
		s.serveReady(w, r)
		return
	case strings.HasPrefix(path, "/openapi/"):
		if s.cfg.OpenAPI != nil {
			s.cfg.OpenAPI.ServeHTTP(w, r)
			return
		}
	}
	if h, ok := s.cfg.Handlers[path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	ri := parseRequestInfo(r)
	if !ri.IsResource {
		if s.serveDiscovery(w, r, ri) {
			return
		}
		writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	st, ok := s.stores[schema.GroupVersionResource{Group: ri.Group, Version: ri.Version, Resource: ri.Resource}]
	if !ok {
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "the server could not find the requested resource", 0, false))
		return
	}
	s.serveResource(w, r, ri, st)
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			writeText(w, http.StatusInternalServerError, "[-]"+err.Error()+"\nreadyz check failed")
			return
		}
	}
	writeText(w, http.StatusOK, "ok")
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}
