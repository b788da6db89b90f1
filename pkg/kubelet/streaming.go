package kubelet

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/proxy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Query parameters of the kubelet's exec and attach endpoints, as
// upstream's kubelet names them ("1" or "true" turns a stream on).
const (
	paramCommand = "command"
	paramStdin   = "input"
	paramStdout  = "output"
	paramStderr  = "error"
	paramTTY     = "tty"
)

// streamOptions are the streams an exec or attach asks for.
type streamOptions struct {
	stdin, stdout, stderr, tty bool
}

func queryBool(q url.Values, key string) bool {
	v := q.Get(key)
	return v == "1" || v == "true"
}

// parseStreamOptions reads the streams from the query as upstream's
// remotecommand.NewOptions does: a TTY merges stderr into stdout, and at
// least one stream is required.
func parseStreamOptions(q url.Values) (streamOptions, error) {
	o := streamOptions{stdin: queryBool(q, paramStdin), stdout: queryBool(q, paramStdout), stderr: queryBool(q, paramStderr), tty: queryBool(q, paramTTY)}
	if o.tty && o.stderr {
		o.stderr = false
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// serveExec runs a command in a container: the runtime hands out a
// streaming URL (CRI Exec) and the caller's upgraded connection is proxied
// to it, as upstream's kubelet does for runtimes that serve streams on
// the node's loopback address.
func (k *Kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts, err := parseStreamOptions(q)
	if err != nil {
		writeStatus(w, err)
		return
	}
	cmd := q[paramCommand]
	if len(cmd) == 0 {
		writeStatus(w, apierrors.NewBadRequest("you must specify a command"))
		return
	}
	id, err := k.runningContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"))
	if err != nil {
		writeStatus(w, err)
		return
	}
	resp, err := k.cfg.Runtime.Exec(r.Context(), &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Tty: opts.tty, Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr})
	if err != nil {
		writeStatus(w, runtimeError(err))
		return
	}
	proxyStream(w, r, resp.GetUrl())
}

// serveAttach attaches to a container's main process through the
// runtime's streaming server (CRI Attach).
func (k *Kubelet) serveAttach(w http.ResponseWriter, r *http.Request) {
	opts, err := parseStreamOptions(r.URL.Query())
	if err != nil {
		writeStatus(w, err)
		return
	}
	id, err := k.runningContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"))
	if err != nil {
		writeStatus(w, err)
		return
	}
	resp, err := k.cfg.Runtime.Attach(r.Context(), &runtimeapi.AttachRequest{ContainerId: id, Tty: opts.tty, Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr})
	if err != nil {
		writeStatus(w, runtimeError(err))
		return
	}
	proxyStream(w, r, resp.GetUrl())
}

// servePortForward forwards connections to the pod's ports through the
// runtime's streaming server (CRI PortForward). SPDY clients name the
// port of each connection in its stream headers; WebSocket clients name
// the ports up front in "port" parameters.
func (k *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	var ports []int32
	for _, v := range r.URL.Query()["port"] {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("invalid port %q", v)))
			return
		}
		ports = append(ports, int32(p))
	}
	pod, err := k.pods.Pods(ns).Get(name)
	if err != nil {
		writeStatus(w, apierrors.NewNotFound(corev1.Resource("pods"), name))
		return
	}
	sbs, err := k.cfg.Runtime.ListPodSandbox(r.Context(), &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{labelPodUID: string(pod.UID)},
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	})
	if err != nil {
		writeStatus(w, runtimeError(err))
		return
	}
	if len(sbs) == 0 {
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("pod %s is not running", name)))
		return
	}
	resp, err := k.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sbs[0].Id, Port: ports})
	if err != nil {
		writeStatus(w, runtimeError(err))
		return
	}
	proxyStream(w, r, resp.GetUrl())
}

// runningContainer returns the runtime's ID of the pod's running
// container, or the error the API server passes on to the client.
func (k *Kubelet) runningContainer(ctx context.Context, ns, name, container string) (string, error) {
	pod, err := k.pods.Pods(ns).Get(name)
	if err != nil {
		return "", apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	if specContainer(pod, container) == nil {
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, name))
	}
	cs, err := k.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{labelPodUID: string(pod.UID), labelContainerName: container},
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return "", runtimeError(err)
	}
	if len(cs) == 0 {
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %s in pod %s is not running", container, name))
	}
	return cs[0].Id, nil
}

// runtimeError turns a CRI error into the Status the client sees.
func runtimeError(err error) error {
	st, ok := grpcstatus.FromError(err)
	if !ok {
		return apierrors.NewInternalError(err)
	}
	switch st.Code() {
	case codes.NotFound, codes.FailedPrecondition, codes.InvalidArgument, codes.Unimplemented:
		return apierrors.NewBadRequest(st.Message())
	case codes.Unavailable:
		return apierrors.NewServiceUnavailable(st.Message())
	}
	return apierrors.NewInternalError(fmt.Errorf("container runtime: %s", st.Message()))
}

// proxyStream proxies the caller's upgraded connection to the runtime's
// streaming URL, as upstream's kubelet proxyStream does.
func proxyStream(w http.ResponseWriter, r *http.Request, rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		writeStatus(w, apierrors.NewInternalError(fmt.Errorf("streaming URL %q: %w", rawURL, err)))
		return
	}
	h := proxy.NewUpgradeAwareHandler(u, nil, false, true, streamResponder{})
	h.ServeHTTP(w, r)
}

// streamResponder reports proxy failures as Status objects.
type streamResponder struct{}

func (streamResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	writeStatus(w, apierrors.NewInternalError(fmt.Errorf("container runtime stream: %w", err)))
}
