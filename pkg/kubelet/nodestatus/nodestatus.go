// Package nodestatus registers a node and keeps it alive: the Node object's
// labels, capacity, addresses, system info and conditions, and the Lease in
// kube-node-lease that the control plane watches as the node's heartbeat.
//
// SetStatus is the pure part (machine facts in, Node out) and is tested on
// its own; Heartbeat is the loop that writes it through the API.
package nodestatus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff/skiff/pkg/machine"
)

// Pressure thresholds, upstream's default hard eviction thresholds.
const (
	memoryPressureBytes  = 100 << 20
	diskPressurePercent  = 10
	pidPressurePercent   = 10
	defaultMaxPods       = 110
	defaultKubeletPort   = 10250
	leaseDurationSeconds = 40
)

// Config describes the node this agent registers.
type Config struct {
	NodeName string
	// Labels are added to the standard ones (hostname, os, arch).
	Labels map[string]string
	// Taints are set when the node is first registered.
	Taints []corev1.Taint
	// Addresses are the node's addresses (InternalIP, Hostname).
	Addresses []corev1.NodeAddress
	// MaxPods is the pods capacity; default 110.
	MaxPods int64
	// KubeletPort is advertised in status.daemonEndpoints; default 10250.
	KubeletPort int32
	// KubeletVersion and ContainerRuntimeVersion fill status.nodeInfo.
	KubeletVersion, ContainerRuntimeVersion string
	// StatusUpdateFrequency is how often status is computed and written
	// when it changed; default 10s. StatusReportFrequency forces a write
	// even when nothing changed; default 5m.
	StatusUpdateFrequency, StatusReportFrequency time.Duration
	// LeaseRenewInterval is how often the lease is renewed; default 10s.
	LeaseRenewInterval time.Duration
	// ReadMachine returns current machine facts.
	ReadMachine func() (machine.Info, error)
	Clock       clock.WithTicker
	Log         *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPods == 0 {
		c.MaxPods = defaultMaxPods
	}
	if c.KubeletPort == 0 {
		c.KubeletPort = defaultKubeletPort
	}
	if c.StatusUpdateFrequency == 0 {
		c.StatusUpdateFrequency = 10 * time.Second
	}
	if c.StatusReportFrequency == 0 {
		c.StatusReportFrequency = 5 * time.Minute
	}
	if c.LeaseRenewInterval == 0 {
		c.LeaseRenewInterval = 10 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// SetStatus fills node from the configuration and machine facts at time
// now, keeping condition transition times that did not change.
func SetStatus(node *corev1.Node, cfg *Config, info machine.Info, now time.Time) {
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	for k, v := range map[string]string{
		corev1.LabelHostname:      cfg.NodeName,
		corev1.LabelOSStable:      info.OS,
		corev1.LabelArchStable:    info.Arch,
		"beta.kubernetes.io/os":   info.OS,
		"beta.kubernetes.io/arch": info.Arch,
	} {
		node.Labels[k] = v
	}
	for k, v := range cfg.Labels {
		node.Labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(info.CPUs), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(info.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(cfg.MaxPods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(info.DiskBytes, resource.BinarySI),
		"hugepages-2Mi":                 *resource.NewQuantity(0, resource.BinarySI),
	}
	node.Status.Capacity = capacity
	// Allocatable keeps the eviction thresholds back, as upstream does.
	alloc := capacity.DeepCopy()
	alloc[corev1.ResourceMemory] = *resource.NewQuantity(max(info.MemoryBytes-memoryPressureBytes, 0), resource.BinarySI)
	alloc[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(info.DiskBytes*(100-diskPressurePercent)/100, resource.BinarySI)
	node.Status.Allocatable = alloc
	node.Status.Addresses = cfg.Addresses
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = cfg.KubeletPort
	node.Status.NodeInfo = corev1.NodeSystemInfo{
		MachineID: info.MachineID, SystemUUID: info.SystemUUID, BootID: info.BootID,
		KernelVersion: info.KernelVersion, OSImage: info.OSImage,
		ContainerRuntimeVersion: cfg.ContainerRuntimeVersion,
		KubeletVersion:          cfg.KubeletVersion, KubeProxyVersion: cfg.KubeletVersion,
		OperatingSystem: info.OS, Architecture: info.Arch,
	}
	mem := info.MemAvailableBytes < memoryPressureBytes
	disk := info.DiskBytes > 0 && info.DiskAvailableBytes*100/info.DiskBytes < diskPressurePercent
	pid := info.PIDMax > 0 && (info.PIDMax-info.PIDsInUse)*100/info.PIDMax < pidPressurePercent
	setCondition(node, now, corev1.NodeMemoryPressure, mem, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available", "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
	setCondition(node, now, corev1.NodeDiskPressure, disk, "KubeletHasDiskPressure", "kubelet has disk pressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
	setCondition(node, now, corev1.NodePIDPressure, pid, "KubeletHasInsufficientPID", "kubelet has insufficient PID available", "KubeletHasSufficientPID", "kubelet has sufficient PID available")
	setCondition(node, now, corev1.NodeReady, true, "KubeletReady", "kubelet is posting ready status", "KubeletNotReady", "kubelet is not ready")
}

func setCondition(node *corev1.Node, now time.Time, typ corev1.NodeConditionType, on bool, onReason, onMsg, offReason, offMsg string) {
	status, reason, msg := corev1.ConditionFalse, offReason, offMsg
	if on {
		status, reason, msg = corev1.ConditionTrue, onReason, onMsg
	}
	t := metav1.NewTime(now)
	for i := range node.Status.Conditions {
		c := &node.Status.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = t
		}
		c.Status, c.Reason, c.Message, c.LastHeartbeatTime = status, reason, msg, t
		return
	}
	node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
		Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: t, LastTransitionTime: t,
	})
}

// changed reports whether status differs other than in heartbeat times.
func changed(a, b *corev1.NodeStatus) bool {
	strip := func(s *corev1.NodeStatus) *corev1.NodeStatus {
		c := s.DeepCopy()
		for i := range c.Conditions {
			c.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return c
	}
	return !apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// Heartbeat registers the node and keeps its status and lease fresh.
type Heartbeat struct {
	cfg    Config
	client kubernetes.Interface
}

// New returns a Heartbeat writing through client.
func New(client kubernetes.Interface, cfg Config) *Heartbeat {
	cfg.setDefaults()
	return &Heartbeat{cfg: cfg, client: client}
}

// Register creates the Node, or updates an existing one's labels and
// status, and returns it.
func (h *Heartbeat) Register(ctx context.Context) (*corev1.Node, error) {
	info, err := h.cfg.ReadMachine()
	if err != nil {
		return nil, fmt.Errorf("read machine: %w", err)
	}
	nodes := h.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, h.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.cfg.NodeName}, Spec: corev1.NodeSpec{Taints: h.cfg.Taints}}
		SetStatus(node, &h.cfg, info, h.cfg.Clock.Now())
		created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
		if err == nil {
			h.cfg.Log.Info("node registered", "node", h.cfg.NodeName)
			return created, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("register node: %w", err)
		}
		node, err = nodes.Get(ctx, h.cfg.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("get node: %w", err)
	}
	want := node.DeepCopy()
	SetStatus(want, &h.cfg, info, h.cfg.Clock.Now())
	if !apiequality.Semantic.DeepEqual(want.Labels, node.Labels) {
		if node, err = nodes.Update(ctx, want, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("update node labels: %w", err)
		}
		want.ResourceVersion = node.ResourceVersion
	}
	return nodes.UpdateStatus(ctx, want, metav1.UpdateOptions{})
}

// Run registers the node and then refreshes its status and lease until
// ctx ends. Failures are logged and retried at the next tick.
func (h *Heartbeat) Run(ctx context.Context) error {
	var node *corev1.Node
	for {
		var err error
		if node, err = h.Register(ctx); err == nil {
			break
		}
		h.cfg.Log.Warn("node registration failed, retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.cfg.Clock.After(time.Second):
		}
	}
	h.renewLease(ctx, node)
	statusTick := h.cfg.Clock.NewTicker(h.cfg.StatusUpdateFrequency)
	defer statusTick.Stop()
	leaseTick := h.cfg.Clock.NewTicker(h.cfg.LeaseRenewInterval)
	defer leaseTick.Stop()
	lastReport := h.cfg.Clock.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-leaseTick.C():
			h.renewLease(ctx, node)
		case <-statusTick.C():
			info, err := h.cfg.ReadMachine()
			if err != nil {
				h.cfg.Log.Warn("read machine", "err", err)
				continue
			}
			cur, err := h.client.CoreV1().Nodes().Get(ctx, h.cfg.NodeName, metav1.GetOptions{ResourceVersion: "0"})
			if err != nil {
				h.cfg.Log.Warn("get node", "err", err)
				continue
			}
			want := cur.DeepCopy()
			now := h.cfg.Clock.Now()
			SetStatus(want, &h.cfg, info, now)
			if !changed(&want.Status, &cur.Status) && now.Sub(lastReport) < h.cfg.StatusReportFrequency {
				continue
			}
			if updated, err := h.client.CoreV1().Nodes().UpdateStatus(ctx, want, metav1.UpdateOptions{}); err != nil {
				h.cfg.Log.Warn("update node status", "err", err)
			} else {
				node, lastReport = updated, now
			}
		}
	}
}

// renewLease creates or renews the node's lease in kube-node-lease.
func (h *Heartbeat) renewLease(ctx context.Context, node *corev1.Node) {
	leases := h.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(h.cfg.Clock.Now())
	lease, err := leases.Get(ctx, h.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: h.cfg.NodeName, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(h.cfg.NodeName), LeaseDurationSeconds: ptr.To(int32(leaseDurationSeconds)), RenewTime: &now},
		}
		if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			h.cfg.Log.Warn("create node lease", "err", err)
		}
		return
	}
	if err != nil {
		h.cfg.Log.Warn("get node lease", "err", err)
		return
	}
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(h.cfg.NodeName)
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		h.cfg.Log.Warn("renew node lease", "err", err)
	}
}
