// Package node is the registry strategy for core/v1 nodes: the machines
// kubelets register, with their status (conditions, addresses, system
// info) written through the status subresource.
package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff/skiff/pkg/registry"
	"github.com/skiff/skiff/pkg/registry/netvalidation"
	"github.com/skiff/skiff/pkg/registry/proxy"
)

// Role labels: node-role.kubernetes.io/<role> and the older
// kubernetes.io/role=<role>.
const (
	RoleLabelPrefix = "node-role.kubernetes.io/"
	LegacyRoleLabel = "kubernetes.io/role"
)

// KubeletLocator finds a node's kubelet and the transport that reaches
// it as the API server.
type KubeletLocator func(ctx context.Context, node string) (*url.URL, http.RoundTripper, error)

// ProxySubresource returns nodes/proxy: .../nodes/NAME[:PORT]/proxy/PATH
// goes to that node's kubelet (on PORT when given), as the API server's
// kubelet client.
func ProxySubresource(kubelet KubeletLocator) registry.Subresource {
	return registry.Subresource{Name: "proxy", Kind: "NodeProxyOptions", Verbs: proxy.Verbs, TakesPath: true,
		Connect: func(ctx context.Context, _, id string, opts url.Values) (http.Handler, error) {
			scheme, name, port, err := proxy.SplitName("node", id)
			if err != nil {
				return nil, err
			}
			base, transport, err := kubelet(ctx, name)
			if err != nil {
				if apierrors.IsNotFound(err) {
					return nil, err
				}
				return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %q: %v", name, err))
			}
			loc := *base
			if scheme != "" {
				loc.Scheme = scheme
			}
			if port != "" {
				loc.Host = net.JoinHostPort(loc.Hostname(), port)
			}
			return proxy.Handler(&loc, opts.Get(proxy.PathParam), transport), nil
		}}
}

// NewResource describes the nodes resource.
func NewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: corev1.SchemeGroupVersion.WithResource("nodes"),
		Kind:                 "Node",
		SingularName:         "node",
		ShortNames:           []string{"no"},
		New:                  func() runtime.Object { return &corev1.Node{} },
		NewList:              func() runtime.Object { return &corev1.NodeList{} },
		Strategy:             strategy{},
		Status:               registry.StatusOnly{},
		Fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"spec.unschedulable": strconv.FormatBool(obj.(*corev1.Node).Spec.Unschedulable)}
		},
		Table: &registry.TableColumns{
			Columns: []metav1.TableColumnDefinition{
				registry.NameColumn,
				{Name: "Status", Type: "string", Description: "The status of the node"},
				{Name: "Roles", Type: "string", Description: "The roles of the node"},
				registry.AgeColumn,
				{Name: "Version", Type: "string", Description: corev1.NodeSystemInfo{}.SwaggerDoc()["kubeletVersion"]},
				{Name: "Internal-IP", Type: "string", Priority: 1, Description: corev1.NodeStatus{}.SwaggerDoc()["addresses"]},
				{Name: "External-IP", Type: "string", Priority: 1, Description: corev1.NodeStatus{}.SwaggerDoc()["addresses"]},
				{Name: "OS-Image", Type: "string", Priority: 1, Description: corev1.NodeSystemInfo{}.SwaggerDoc()["osImage"]},
				{Name: "Kernel-Version", Type: "string", Priority: 1, Description: corev1.NodeSystemInfo{}.SwaggerDoc()["kernelVersion"]},
				{Name: "Container-Runtime", Type: "string", Priority: 1, Description: corev1.NodeSystemInfo{}.SwaggerDoc()["containerRuntimeVersion"]},
			},
			Row: func(obj runtime.Object, now time.Time) []interface{} {
				n := obj.(*corev1.Node)
				info := n.Status.NodeInfo
				unknown := func(s string) string {
					if s == "" {
						return "<unknown>"
					}
					return s
				}
				return []interface{}{n.Name, Status(n), Roles(n), registry.Age(n.CreationTimestamp, now), info.KubeletVersion,
					address(n, corev1.NodeInternalIP), address(n, corev1.NodeExternalIP), unknown(info.OSImage), unknown(info.KernelVersion), unknown(info.ContainerRuntimeVersion)}
			},
		},
	}
}

// Status renders the STATUS column: Ready when the Ready condition is
// True, NotReady when it is anything else, Unknown without one; then
// SchedulingDisabled for cordoned nodes.
func Status(n *corev1.Node) string {
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = "NotReady"
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	return status
}

// Roles renders the ROLES column: the sorted, distinct roles of the
// node-role.kubernetes.io/<role> and kubernetes.io/role labels, or
// "<none>".
func Roles(n *corev1.Node) string {
	roles := sets.New[string]()
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, RoleLabelPrefix):
			if role := strings.TrimPrefix(k, RoleLabelPrefix); role != "" {
				roles.Insert(role)
			}
		case k == LegacyRoleLabel && v != "":
			roles.Insert(v)
		}
	}
	if roles.Len() == 0 {
		return "<none>"
	}
	list := roles.UnsortedList()
	sort.Strings(list)
	return strings.Join(list, ",")
}

func address(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

type strategy struct{ registry.DefaultStrategy }

// Default implements registry.Strategy: podCIDR and podCIDRs agree, the
// plural winning, as upstream's conversion makes them.
func (strategy) Default(obj runtime.Object) {
	s := &obj.(*corev1.Node).Spec
	if len(s.PodCIDRs) == 0 && s.PodCIDR != "" {
		s.PodCIDRs = []string{s.PodCIDR}
	}
	if len(s.PodCIDRs) > 0 {
		s.PodCIDR = s.PodCIDRs[0]
	}
}

// PrepareForCreate implements registry.Strategy: the status a registering
// kubelet sends is kept.
func (strategy) PrepareForCreate(context.Context, runtime.Object) {}

// PrepareForUpdate implements registry.Strategy: status changes only
// through nodes/status.
func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	registry.KeepStatus(obj, old)
}

// Validate implements registry.Strategy.
func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return Validate(obj.(*corev1.Node))
}

// ValidateUpdate implements registry.Strategy: podCIDRs and providerID may
// only go from unset to set.
func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	n, o := obj.(*corev1.Node), old.(*corev1.Node)
	errs := Validate(n)
	if len(o.Spec.PodCIDRs) > 0 {
		changed := len(o.Spec.PodCIDRs) != len(n.Spec.PodCIDRs)
		for i := 0; !changed && i < len(o.Spec.PodCIDRs); i++ {
			changed = o.Spec.PodCIDRs[i] != n.Spec.PodCIDRs[i]
		}
		if changed {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "podCIDRs"), `node updates may not change podCIDR except from "" to valid`))
		}
	}
	if o.Spec.ProviderID != "" && o.Spec.ProviderID != n.Spec.ProviderID {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "providerID"), `node updates may not change providerID except from "" to valid`))
	}
	return errs
}

var effects = []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}

// Validate checks a node as upstream's ValidateNode does. Taint errors are
// reported under metadata.taints, as upstream (historically) reports them.
func Validate(n *corev1.Node) field.ErrorList {
	errs := validateTaints(n.Spec.Taints, field.NewPath("metadata", "taints"))
	cidrs := field.NewPath("spec", "podCIDRs")
	for i, c := range n.Spec.PodCIDRs {
		errs = append(errs, netvalidation.CIDR(cidrs.Index(i), c)...)
	}
	if len(n.Spec.PodCIDRs) > 1 && (len(n.Spec.PodCIDRs) > 2 || isIPv6CIDR(n.Spec.PodCIDRs[0]) == isIPv6CIDR(n.Spec.PodCIDRs[1])) {
		errs = append(errs, field.Invalid(cidrs, n.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
	}
	return errs
}

func isIPv6CIDR(c string) bool {
	ip, _, err := net.ParseCIDR(c)
	return err == nil && ip.To4() == nil
}

func validateTaints(taints []corev1.Taint, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[corev1.TaintEffect]sets.Set[string]{}
	for i, t := range taints {
		p := path.Index(i)
		errs = append(errs, metav1validation.ValidateLabelName(t.Key, p.Child("key"))...)
		if msgs := validation.IsValidLabelValue(t.Value); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("value"), t.Value, strings.Join(msgs, ";")))
		}
		switch {
		case t.Effect == "":
			errs = append(errs, field.Required(p.Child("effect"), ""))
		case !sets.New(effects...).Has(t.Effect):
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, effects))
		}
		if seen[t.Effect].Has(t.Key) {
			dup := field.Duplicate(p, t)
			dup.Detail = "taints must be unique by key and effect pair"
			errs = append(errs, dup)
			continue
		}
		if seen[t.Effect] == nil {
			seen[t.Effect] = sets.New[string]()
		}
		seen[t.Effect].Insert(t.Key)
	}
	return errs
}
