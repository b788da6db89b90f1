// Package pod is the registry strategy for core/v1 pods: upstream's
// defaults and validation, the STATUS column kubectl shows, graceful
// deletion, and the binding, eviction and streaming subresources.
//
// The pod-spec defaulting and validation are exported for the workload
// resources whose templates embed a pod spec.
package pod

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	"k8s.io/utils/clock"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/proxy"
)

// NewResource describes the pods resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("pods"),
		Kind:                 "Pod",
		SingularName:         "pod",
		ShortNames:           []string{"po"},
		Categories:           []string{"all"},
		Namespaced:           true,
		New:                  func() runtime.Object { return &corev1.Pod{} },
		NewList:              func() runtime.Object { return &corev1.PodList{} },
		Strategy:             strategy{},
		Status:               statusStrategy{},
		Generation:           true,
		ReturnDeletedObject:  true,
		Fields:               Fields,
		Table:                &registry.TableColumns{Columns: columns, Row: row},
	}
}

// Fields are the pod's selectable fields.
func Fields(obj runtime.Object) fields.Set {
	p := obj.(*corev1.Pod)
	return fields.Set{
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

type strategy struct{ registry.DefaultStrategy }

var _ registry.GracefulDeleter = strategy{}

func (strategy) Default(obj runtime.Object) { DefaultPod(obj.(*corev1.Pod)) }

func (strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	p := obj.(*corev1.Pod)
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: QOSClass(&p.Spec)}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	p := obj.(*corev1.Pod)
	return ValidatePodSpec(&p.Spec, field.NewPath("spec"))
}

func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Pod).Status = old.(*corev1.Pod).Status
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return ValidatePodUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
}

// GracePeriod implements registry.GracefulDeleter: pods that never ran
// (unscheduled) or have finished go at once; others get the requested
// period, the pod's terminationGracePeriodSeconds, or 30 s.
func (strategy) GracePeriod(obj runtime.Object, opts *metav1.DeleteOptions) (int64, bool) {
	p := obj.(*corev1.Pod)
	period := int64(corev1.DefaultTerminationGracePeriodSeconds)
	switch {
	case opts.GracePeriodSeconds != nil:
		period = *opts.GracePeriodSeconds
	case p.Spec.TerminationGracePeriodSeconds != nil:
		period = *p.Spec.TerminationGracePeriodSeconds
		if period < 0 {
			period = 1
		}
	}
	if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		period = 0
	}
	return period, period > 0
}

// statusStrategy is the pods/status strategy: only .status changes, and
// observedGeneration values a writer leaves out (older clients) keep the
// stored ones, as upstream's pod status strategy does.
type statusStrategy struct{}

func (statusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	registry.StatusOnly{}.PrepareForUpdate(ctx, obj, old)
	keepObservedGeneration(&obj.(*corev1.Pod).Status, &old.(*corev1.Pod).Status)
}

func (statusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validateStatus(ctx, obj, old)
}

// keepObservedGeneration copies old's observedGeneration, and each old
// condition's (matched by type, in order), where cur leaves it 0.
func keepObservedGeneration(cur, old *corev1.PodStatus) {
	if cur.ObservedGeneration == 0 {
		cur.ObservedGeneration = old.ObservedGeneration
	}
	oldGens := map[corev1.PodConditionType][]int64{}
	for _, c := range old.Conditions {
		oldGens[c.Type] = append(oldGens[c.Type], c.ObservedGeneration)
	}
	for i := range cur.Conditions {
		c := &cur.Conditions[i]
		gens := oldGens[c.Type]
		if len(gens) == 0 {
			continue
		}
		oldGens[c.Type] = gens[1:]
		if c.ObservedGeneration == 0 {
			c.ObservedGeneration = gens[0]
		}
	}
}

var phases = []string{string(corev1.PodPending), string(corev1.PodRunning), string(corev1.PodSucceeded), string(corev1.PodFailed), string(corev1.PodUnknown)}

func validateStatus(_ context.Context, obj, _ runtime.Object) field.ErrorList {
	p := obj.(*corev1.Pod)
	var errs field.ErrorList
	if p.Status.Phase != "" && !slices.Contains(phases, string(p.Status.Phase)) {
		errs = append(errs, field.NotSupported(field.NewPath("status", "phase"), p.Status.Phase, phases))
	}
	return errs
}

// NodeLocator finds a node's kubelet and the transport that reaches it as
// the API server.
type NodeLocator interface {
	Kubelet(ctx context.Context, node string) (base *url.URL, transport http.RoundTripper, err error)
}

// Subresources returns pods' binding, eviction, streaming and proxy
// subresources, served through store; evictions respect the
// PodDisruptionBudgets of budgets (nil: none); logs and streams are
// proxied to the pod's kubelet found by nodes, pods/proxy to the pod
// itself through backends.
func Subresources(store, budgets *registry.Store, clk clock.PassiveClock, nodes NodeLocator, backends http.RoundTripper) []registry.Subresource {
	ev := &evictor{pods: store, budgets: budgets, clock: clk}
	connect := func(name, kind string) registry.Subresource {
		return registry.Subresource{
			Name: name, Kind: kind, Verbs: []string{"create", "get"},
			Connect: func(ctx context.Context, ns, pod string, opts url.Values) (http.Handler, error) {
				return streamProxy(ctx, store, nodes, name, ns, pod, opts)
			},
		}
	}
	podProxy := registry.Subresource{
		Name: "proxy", Kind: "PodProxyOptions", Verbs: proxy.Verbs, TakesPath: true,
		Connect: func(ctx context.Context, ns, id string, opts url.Values) (http.Handler, error) {
			return proxyHandler(ctx, store, backends, ns, id, opts)
		},
	}
	log := registry.Subresource{
		Name: "log", Kind: "Pod", Verbs: []string{"get"},
		Connect: func(ctx context.Context, ns, name string, opts url.Values) (http.Handler, error) {
			return logProxy(ctx, store, nodes, ns, name, opts)
		},
	}
	return []registry.Subresource{
		{
			Name: "binding", Kind: "Binding", Verbs: []string{"create"},
			New: func() runtime.Object { return &corev1.Binding{} },
			Create: func(ctx context.Context, ns, name string, body runtime.Object, dryRun bool) (runtime.Object, error) {
				return bind(ctx, store, clk, ns, name, body.(*corev1.Binding), dryRun)
			},
		},
		{
			Name: "eviction", Kind: "Eviction", Group: "policy", Version: "v1", Verbs: []string{"create"},
			New: func() runtime.Object { return &policyv1.Eviction{} },
			Create: func(ctx context.Context, ns, name string, body runtime.Object, dryRun bool) (runtime.Object, error) {
				return ev.evict(ctx, ns, name, body.(*policyv1.Eviction), dryRun)
			},
		},
		log,
		connect("exec", "PodExecOptions"),
		connect("attach", "PodAttachOptions"),
		connect("portforward", "PodPortForwardOptions"),
		podProxy,
	}
}

// bind assigns a pod to a node, once, as the pods/binding subresource does.
func bind(ctx context.Context, store *registry.Store, clk clock.PassiveClock, ns, name string, b *corev1.Binding, dryRun bool) (runtime.Object, error) {
	if b.Name != name {
		return nil, apierrors.NewBadRequest("name in URL does not match name in Binding object")
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), name, field.ErrorList{field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"})})
	}
	if b.Target.Name == "" {
		return nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), name, field.ErrorList{field.Required(field.NewPath("target", "name"), "")})
	}
	_, _, err := store.Update(ctx, ns, name, func(_ context.Context, old runtime.Object) (runtime.Object, error) {
		if old == nil {
			return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
		}
		p := old.(*corev1.Pod)
		if p.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(corev1.Resource("pods/binding"), name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", name))
		}
		if p.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(corev1.Resource("pods/binding"), name, fmt.Errorf("pod %s is already assigned to node %q", name, p.Spec.NodeName))
		}
		if b.UID != "" && b.UID != p.UID {
			return nil, apierrors.NewConflict(corev1.Resource("pods/binding"), name, fmt.Errorf("the UID in the binding (%s) does not match the pod's (%s)", b.UID, p.UID))
		}
		p.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[k] = v
		}
		setCondition(&p.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, ObservedGeneration: p.Generation, LastTransitionTime: metav1.NewTime(clk.Now())})
		return p, nil
	}, registry.UpdateOptions{Subresource: "binding", DryRun: dryRun, SubresourceStrategy: bindingStrategy{}})
	if err != nil {
		return nil, err
	}
	return &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}, nil
}

// bindingStrategy accepts the node name and scheduling condition a binding
// writes; nothing else reaches it.
type bindingStrategy struct{}

func (bindingStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (bindingStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}

func setCondition(s *corev1.PodStatus, c corev1.PodCondition) {
	for i := range s.Conditions {
		if s.Conditions[i].Type == c.Type {
			if s.Conditions[i].Status == c.Status {
				c.LastTransitionTime = s.Conditions[i].LastTransitionTime
			}
			s.Conditions[i] = c
			return
		}
	}
	s.Conditions = append(s.Conditions, c)
}

// logProxy returns the handler proxying a pod's log request to its
// kubelet's /containerLogs.
func logProxy(ctx context.Context, store *registry.Store, nodes NodeLocator, ns, name string, opts url.Values) (http.Handler, error) {
	obj, err := store.Get(ctx, ns, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	p := obj.(*corev1.Pod)
	container := opts.Get("container")
	if container == "" {
		if len(p.Spec.Containers) != 1 {
			var names []string
			for _, c := range p.Spec.Containers {
				names = append(names, c.Name)
			}
			return nil, apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", name, names))
		}
		container = p.Spec.Containers[0].Name
	}
	if !hasContainer(p, container) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, name))
	}
	if p.Spec.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", name))
	}
	base, transport, err := nodes.Kubelet(ctx, p.Spec.NodeName)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %q: %v", p.Spec.NodeName, err))
	}
	target := *base
	target.Path = "/containerLogs/" + ns + "/" + name + "/" + container
	q := url.Values{}
	for _, key := range []string{"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"} {
		if v := opts.Get(key); v != "" {
			q.Set(key, v)
		}
	}
	target.RawQuery = q.Encode()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL = &target
			r.Out.Host = target.Host
			r.Out.Header.Del("Authorization")
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeUnavailable(w, fmt.Sprintf("error reaching the kubelet of node %q: %v", p.Spec.NodeName, err))
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !wsstream.IsWebSocketRequest(r) {
			proxy.ServeHTTP(w, r)
			return
		}
		logOverWebSocket(w, r, &target, transport, p.Spec.NodeName)
	}), nil
}

// logOverWebSocket streams a log the kubelet serves to a WebSocket
// client, one message per read (binary.k8s.io, base64.binary.k8s.io or
// the plain protocol), as upstream's API server streams any resource
// stream when the request asks for a WebSocket. A kubelet error is
// passed on as it came, before any upgrade.
func logOverWebSocket(w http.ResponseWriter, r *http.Request, target *url.URL, transport http.RoundTripper, node string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target.String(), nil)
	if err != nil {
		writeUnavailable(w, err.Error())
		return
	}
	resp, err := transport.RoundTrip(req)
	if err != nil {
		writeUnavailable(w, fmt.Sprintf("error reaching the kubelet of node %q: %v", node, err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	// Copy ends with the stream or the client; what it reports is the
	// client going away, nothing to answer.
	_ = wsstream.NewReader(resp.Body, true, wsstream.NewDefaultReaderProtocols()).Copy(w, r)
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, list := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	for _, c := range p.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}
