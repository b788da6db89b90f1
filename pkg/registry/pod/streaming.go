package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/proxy"
	apiproxy "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/skiff/skiff/pkg/registry"
)

// streamProxy returns the handler of pods/exec, pods/attach and
// pods/portforward: the client's upgraded connection (SPDY or WebSocket)
// is proxied to the kubelet of the pod's node, whose streaming endpoints
// speak SPDY and the older WebSocket protocols. As upstream's API server
// does, WebSocket clients of the v5.channel.k8s.io protocol (kubectl 1.30
// and newer, for exec and attach) are translated to SPDY here, and
// WebSocket port-forward tunnels (kubectl 1.31 and newer) carry SPDY
// through to the kubelet.
func streamProxy(ctx context.Context, store *registry.Store, nodes NodeLocator, sub, ns, name string, opts url.Values) (http.Handler, error) {
	obj, err := store.Get(ctx, ns, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	p := obj.(*corev1.Pod)
	params := url.Values{}
	path := ""
	var streams apiproxy.Options
	switch sub {
	case "exec", "attach":
		container, err := streamContainer(p, opts.Get("container"))
		if err != nil {
			return nil, err
		}
		for _, s := range []struct {
			query, kubelet string
			into           *bool
		}{{"stdin", "input", &streams.Stdin}, {"stdout", "output", &streams.Stdout}, {"stderr", "error", &streams.Stderr}, {"tty", "tty", &streams.Tty}} {
			if v := opts.Get(s.query); v != "" {
				on, err := strconv.ParseBool(v)
				if err != nil {
					return nil, apierrors.NewBadRequest(fmt.Sprintf("%s: %v", s.query, err))
				}
				*s.into = on
			}
			if *s.into {
				params.Set(s.kubelet, "1")
			}
		}
		if sub == "exec" {
			if len(opts["command"]) == 0 {
				return nil, apierrors.NewBadRequest("you must specify a command")
			}
			params["command"] = opts["command"]
		}
		path = "/" + sub + "/" + ns + "/" + name + "/" + container
	case "portforward":
		for _, v := range opts["ports"] {
			if _, err := strconv.ParseUint(v, 10, 16); err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid port %q", v))
			}
			params.Add("port", v)
		}
		path = "/portForward/" + ns + "/" + name
	}
	if p.Spec.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", name))
	}
	base, transport, err := nodes.Kubelet(ctx, p.Spec.NodeName)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %q: %v", p.Spec.NodeName, err))
	}
	target := *base
	target.Path = path
	target.RawQuery = params.Encode()
	upgrade := proxy.NewUpgradeAwareHandler(&target, transport, false, true, kubeletResponder{node: p.Spec.NodeName})
	if sub == "portforward" {
		return apiproxy.NewTranslatingHandler(upgrade, apiproxy.NewTunnelingHandler(upgrade), wsstream.IsWebSocketRequestWithTunnelingProtocol), nil
	}
	translator := apiproxy.NewStreamTranslatorHandler(&target, transport, 0, streams)
	return apiproxy.NewTranslatingHandler(upgrade, translator, wsstream.IsWebSocketRequestWithStreamCloseProtocol), nil
}

// streamContainer is the container an exec or attach names, or the pod's
// only container when it names none.
func streamContainer(p *corev1.Pod, container string) (string, error) {
	if container == "" {
		if len(p.Spec.Containers) != 1 {
			var names []string
			for _, c := range p.Spec.Containers {
				names = append(names, c.Name)
			}
			return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", p.Name, names))
		}
		return p.Spec.Containers[0].Name, nil
	}
	if !hasContainer(p, container) {
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, p.Name))
	}
	return container, nil
}

// kubeletResponder reports a kubelet that cannot be reached as a 503
// Status.
type kubeletResponder struct{ node string }

func (k kubeletResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	writeUnavailable(w, fmt.Sprintf("error reaching the kubelet of node %q: %v", k.node, err))
}

func writeUnavailable(w http.ResponseWriter, msg string) {
	st := apierrors.NewServiceUnavailable(msg).ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(st)
}
