package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
)

// ServerConfig configures the kubelet's HTTPS server, which the API server
// calls for logs, exec, attach and port-forward.
type ServerConfig struct {
	// Addresses to try, in order: the first that binds is used.
	Ports []int
	// Cert is the kubelet's serving certificate.
	Cert tls.Certificate
	// ClientCAs verify callers; only the API server's client certificate
	// (group system:masters) may call.
	ClientCAs *x509.CertPool
}

// Serve listens on the first free port of cfg.Ports (0 means any) and
// serves until ctx ends; it returns the port once listening.
func (k *Kubelet) Serve(ctx context.Context, cfg ServerConfig) (int, error) {
	var ln net.Listener
	var err error
	for _, p := range cfg.Ports {
		if ln, err = net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(p))); err == nil {
			break
		}
	}
	if ln == nil {
		return 0, fmt.Errorf("kubelet server: %w", err)
	}
	srv := &http.Server{
		Handler:           k.handler(),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cfg.Cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    cfg.ClientCAs,
			MinVersion:   tls.VersionTLS12,
		},
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (k *Kubelet) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", k.serveLogs)
	// Streams upgrade GET or POST requests, as upstream's kubelet allows.
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", k.serveExec)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", k.serveAttach)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}", k.servePortForward)
	}
	return authorize(mux)
}

// authorize admits only callers whose certificate puts them in
// system:masters (the API server).
func authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !slices.Contains(r.TLS.PeerCertificates[0].Subject.Organization, "system:masters") {
			writeStatus(w, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes/proxy"}, "", fmt.Errorf("only the API server may call the kubelet")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeStatus(w http.ResponseWriter, err error) {
	st := apierrors.NewInternalError(err).ErrStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		st = s.Status()
	}
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}

// serveLogs streams a container's log as upstream's /containerLogs does.
func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	pod, err := k.pods.Pods(ns).Get(name)
	if err != nil {
		writeStatus(w, apierrors.NewNotFound(corev1.Resource("pods"), name))
		return
	}
	if specContainer(pod, container) == nil {
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, name)))
		return
	}
	st, err := k.runtimeStateOf(r.Context(), pod.UID)
	if err != nil {
		writeStatus(w, err)
		return
	}
	list := st.byName[container]
	previous := q.Get("previous") == "true"
	var target *runtimeapi.ContainerStatus
	switch {
	case previous && len(list) > 1:
		target = list[1]
	case previous:
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", container, name)))
		return
	case len(list) > 0:
		target = list[0]
	default:
		reason := reasonContainerCreating
		if we := k.waitingErrorOf(pod, container); we != nil {
			reason = we.reason
		}
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, name, reason)))
		return
	}
	opts := &logs.LogOptions{Follow: q.Get("follow") == "true", Timestamp: q.Get("timestamps") == "true"}
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeStatus(w, apierrors.NewBadRequest("tailLines: "+err.Error()))
			return
		}
		opts.TailLines = &n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeStatus(w, apierrors.NewBadRequest("limitBytes: "+err.Error()))
			return
		}
		opts.LimitBytes = &n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeStatus(w, apierrors.NewBadRequest("sinceSeconds: "+err.Error()))
			return
		}
		opts.Since = k.cfg.Clock.Now().Add(-time.Duration(n) * time.Second)
	} else if v := q.Get("sinceTime"); v != "" {
		var t metav1.Time
		if err := t.UnmarshalQueryParameter(v); err != nil {
			writeStatus(w, apierrors.NewBadRequest("sinceTime: "+err.Error()))
			return
		}
		opts.Since = t.Time
	}
	w.Header().Set("Content-Type", "text/plain")
	out := &flushWriter{w: w}
	if f, ok := w.(http.Flusher); ok {
		out.f = f
	}
	if err := logs.ReadLogs(r.Context(), target.LogPath, target.Id, opts, k.cfg.Runtime, out, out); err != nil && !strings.Contains(err.Error(), "context canceled") {
		k.cfg.Log.Debug("read logs", "pod", ns+"/"+name, "container", container, "err", err)
	}
}

// flushWriter flushes after every write so followed logs arrive at once.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}
