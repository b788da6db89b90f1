// Package proxy serves the proxy subresources of pods, services and nodes
// (GET/POST/PUT/PATCH/DELETE .../NAME/proxy/PATH): the request is
// forwarded to the backend the resource names, as upstream's API server
// does, through apimachinery's upgrade-aware proxy (which also rewrites
// links in HTML answers so they stay under the proxy path).
package proxy

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/proxy"
)

// PathParam is the query parameter of the proxy options (PodProxyOptions,
// ServiceProxyOptions, NodeProxyOptions) that carries the backend path;
// the API server sets it from the URL's trailing path.
const PathParam = "path"

// Verbs are the verbs of a proxy subresource (HEAD is get, OPTIONS is
// served as its own method by the backend).
var Verbs = []string{"create", "delete", "get", "patch", "update"}

// NewTransport returns the transport that reaches pods and service
// endpoints: plain HTTP, or HTTPS without verifying the backend's
// certificate (pods serve self-signed ones), as upstream's proxy
// transport does.
func NewTransport() http.RoundTripper {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // upstream's proxy does not verify pods
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
	}
}

// SplitName splits a proxy subresource's object name, "name",
// "name:port" or "scheme:name:port"; it fails with a 400 Status.
func SplitName(kind, id string) (scheme, name, port string, err error) {
	scheme, name, port, ok := utilnet.SplitSchemeNamePort(id)
	if !ok {
		return "", "", "", apierrors.NewBadRequest(fmt.Sprintf("invalid %s request %q", kind, id))
	}
	return scheme, name, port, nil
}

// Handler forwards every request to location with path appended (the
// request's query is kept); a backend that cannot be reached is a 503
// Status.
func Handler(location *url.URL, path string, transport http.RoundTripper) http.Handler {
	loc := *location
	loc.Path = utilnet.JoinPreservingTrailingSlash(loc.Path, path)
	h := proxy.NewUpgradeAwareHandler(&loc, transport, true, false, responder{})
	return h
}

// responder writes a backend failure as a Status: the one the proxy's
// transport made (a 503 "error trying to reach service"), or a 503 of
// its own.
type responder struct{}

func (responder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	var st metav1.Status
	if s := apierrors.APIStatus(nil); errors.As(err, &s) {
		st = s.Status()
	} else {
		st = apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach service: %v", err)).ErrStatus
	}
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Code == 0 {
		st.Code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}
