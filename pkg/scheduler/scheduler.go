// Package scheduler places pending pods on nodes, as kube-scheduler does:
// a queue of pods waiting for a node (pkg/scheduler/queue), a cache of
// nodes with their pods that also holds decisions not yet bound
// (pkg/scheduler/cache), filter and score plugins
// (pkg/scheduler/plugins), and binding through pods/binding. It watches
// the API like any client; `skiff server` runs it under leader election.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	schedcache "github.com/skiff/skiff/pkg/scheduler/cache"
	"github.com/skiff/skiff/pkg/scheduler/framework"
	"github.com/skiff/skiff/pkg/scheduler/plugins"
	"github.com/skiff/skiff/pkg/scheduler/queue"
)

// DefaultSchedulerName is the spec.schedulerName this scheduler serves.
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Config configures a Scheduler.
type Config struct {
	Client kubernetes.Interface
	// SchedulerName defaults to "default-scheduler".
	SchedulerName string
	// BindWorkers is how many bindings may be in flight (default 64).
	BindWorkers int
	Clock       clock.WithTicker
	// Rand breaks ties between equally scored nodes; seeded randomly when
	// nil.
	Rand *rand.Rand
	Log  *slog.Logger
}

// Scheduler schedules pods.
type Scheduler struct {
	cfg      Config
	cache    *schedcache.Cache
	queue    *queue.Queue
	recorder record.EventRecorder

	preFilters []framework.PreFilterPlugin
	filters    []framework.FilterPlugin
	preScores  []framework.PreScorePlugin
	scores     []plugins.Weighted
	reserves   []framework.ReservePlugin
	preBinds   []framework.PreBindPlugin

	// nextStart rotates where the search for feasible nodes starts, so
	// sampling does not favour the first nodes.
	nextStart int
	binds     chan bindJob
	// scheduled counts pods bound by this scheduler.
	scheduled atomic.Int64
	// handlersSynced report when the event handlers have seen the
	// informers' initial lists (the cache is complete).
	handlersSynced []cache.InformerSynced
}

type bindJob struct {
	qp    *queue.QueuedPod
	pi    *framework.PodInfo
	state *framework.CycleState
	node  string
}

// New returns a Scheduler; Run starts it.
func New(cfg Config) *Scheduler {
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = DefaultSchedulerName
	}
	if cfg.BindWorkers == 0 {
		cfg.BindWorkers = 128
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Scheduler{cfg: cfg, cache: schedcache.New(), queue: queue.New(cfg.Clock), binds: make(chan bindJob, 1024)}
}

// Run watches the cluster and schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(s.cfg.Client, 0)
	spread := &defaultSelector{
		services: f.Core().V1().Services().Lister(), rcs: f.Core().V1().ReplicationControllers().Lister(),
		rss: f.Apps().V1().ReplicaSets().Lister(), sts: f.Apps().V1().StatefulSets().Lister(),
	}
	volumes := &plugins.VolumeBinding{PVCs: f.Core().V1().PersistentVolumeClaims().Lister(), PVs: f.Core().V1().PersistentVolumes().Lister(),
		Classes: f.Storage().V1().StorageClasses().Lister(), Client: s.cfg.Client, Clock: s.cfg.Clock}
	s.setPlugins(spread.selector, volumes)
	if err := s.addHandlers(f); err != nil {
		return err
	}
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.cfg.Client.CoreV1().Events("")})
	defer b.Shutdown()
	s.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: s.cfg.SchedulerName})
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("scheduler: %v informer did not sync", typ)
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), s.handlersSynced...) {
		return ctx.Err()
	}
	s.cfg.Log.Info("scheduler running", "nodes", s.cache.NodeCount())
	go s.queue.Run(ctx)
	for range s.cfg.BindWorkers {
		go s.bindWorker(ctx)
	}
	for ctx.Err() == nil {
		s.ScheduleOne(ctx)
	}
	f.Shutdown()
	return nil
}

// setPlugins installs the default plugin set with upstream's score weights.
func (s *Scheduler) setPlugins(selector func(*corev1.Pod) labels.Selector, volumes *plugins.VolumeBinding) {
	spread := plugins.PodTopologySpread{DefaultSelector: selector}
	affinity := plugins.InterPodAffinity{}
	nodeAffinity := plugins.NodeAffinity{}
	taints := plugins.TaintToleration{}
	fit := plugins.NodeResourcesFit{}
	images := plugins.ImageLocality{}
	s.preFilters = []framework.PreFilterPlugin{nodeAffinity, volumes, affinity, spread}
	s.filters = []framework.FilterPlugin{plugins.NodeUnschedulable{}, taints, nodeAffinity, fit, plugins.NodePorts{}, volumes, affinity, spread}
	s.preScores = []framework.PreScorePlugin{affinity, spread, images}
	s.scores = []plugins.Weighted{
		{Plugin: taints, Weight: 3}, {Plugin: nodeAffinity, Weight: 2}, {Plugin: fit, Weight: 1},
		{Plugin: plugins.BalancedAllocation{}, Weight: 1}, {Plugin: images, Weight: 1},
		{Plugin: affinity, Weight: 2}, {Plugin: spread, Weight: 2},
	}
	s.reserves = []framework.ReservePlugin{volumes}
	s.preBinds = []framework.PreBindPlugin{volumes}
}

// ScheduleOne pops one pod and schedules it (binding asynchronously).
func (s *Scheduler) ScheduleOne(ctx context.Context) {
	qp, cycle := s.queue.Pop(ctx)
	if qp == nil {
		return
	}
	pod := qp.Pod
	if pod.DeletionTimestamp != nil || pod.Spec.NodeName != "" || s.cache.IsAssumedOrBound(pod.UID) {
		s.queue.Done(pod.UID)
		return
	}
	pi, err := framework.NewPodInfo(pod)
	if err != nil {
		s.fail(ctx, qp, cycle, err.Error(), nil)
		return
	}
	var node string
	var diag *diagnosis
	var state *framework.CycleState
	s.cache.View(func(snap framework.Snapshot) { node, diag, state = s.findNode(ctx, pi, snap) })
	if node == "" {
		s.fail(ctx, qp, cycle, diag.message(), diag.rejectedBy)
		return
	}
	s.cache.Assume(pi, node)
	// Reserve synchronously, before the next cycle, so it cannot pick what
	// this pod is about to bind.
	for i, r := range s.reserves {
		if st := r.Reserve(ctx, state, pi, node); !st.IsSuccess() {
			for _, done := range s.reserves[:i] {
				done.Unreserve(ctx, state, pi, node)
			}
			s.cache.Forget(pod.UID)
			s.fail(ctx, qp, cycle, strings.Join(st.Reasons, ", "), map[string]bool{r.Name(): true})
			return
		}
	}
	select {
	case s.binds <- bindJob{qp: qp, pi: pi, state: state, node: node}:
	case <-ctx.Done():
	}
}

// diagnosis explains why no node fits.
type diagnosis struct {
	nodes      int
	reasons    map[string]int
	rejectedBy map[string]bool
}

// message is upstream's FailedScheduling text, reasons sorted:
// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match
// Pod's node affinity/selector."
func (d *diagnosis) message() string {
	if d.nodes == 0 {
		return "no nodes available to schedule pods"
	}
	parts := make([]string, 0, len(d.reasons))
	for r, n := range d.reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return fmt.Sprintf("0/%d nodes are available: %s.", d.nodes, strings.Join(parts, ", "))
}

// numFeasibleNodesToFind is upstream's adaptive sample size: all nodes up
// to 100, then 50% less 1% per 125 nodes (at least 5%, at least 100).
func numFeasibleNodesToFind(all int) int {
	if all < 100 {
		return all
	}
	pct := 50 - all/125
	if pct < 5 {
		pct = 5
	}
	n := all * pct / 100
	if n < 100 {
		return 100
	}
	return n
}

func (s *Scheduler) findNode(ctx context.Context, pi *framework.PodInfo, snap framework.Snapshot) (string, *diagnosis, *framework.CycleState) {
	nodes := snap.Nodes()
	d := &diagnosis{nodes: len(nodes), reasons: map[string]int{}, rejectedBy: map[string]bool{}}
	state := framework.NewCycleState()
	if len(nodes) == 0 {
		return "", d, state
	}
	for _, p := range s.preFilters {
		if st := p.PreFilter(ctx, state, pi, snap); !st.IsSuccess() {
			for _, r := range st.Reasons {
				d.reasons[r] += len(nodes)
			}
			d.rejectedBy[p.Name()] = true
			return "", d, state
		}
	}
	want := numFeasibleNodesToFind(len(nodes))
	feasible := make([]*framework.NodeInfo, 0, want)
	checked := 0
	for i := 0; i < len(nodes) && len(feasible) < want; i++ {
		ni := nodes[(s.nextStart+i)%len(nodes)]
		checked++
		if st, name := s.filter(ctx, state, pi, ni); !st.IsSuccess() {
			for _, r := range st.Reasons {
				d.reasons[r]++
			}
			d.rejectedBy[name] = true
			continue
		}
		feasible = append(feasible, ni)
	}
	s.nextStart = (s.nextStart + checked) % len(nodes)
	switch len(feasible) {
	case 0:
		return "", d, state
	case 1:
		return feasible[0].Node.Name, d, state
	}
	for _, p := range s.preScores {
		p.PreScore(ctx, state, pi, feasible, snap)
	}
	total := make([]int64, len(feasible))
	raw := make([]int64, len(feasible))
	for _, w := range s.scores {
		if sk, ok := w.Plugin.(framework.ScoreSkipper); ok && sk.SkipScore(state, pi) {
			continue
		}
		for i, ni := range feasible {
			raw[i] = w.Plugin.Score(ctx, state, pi, ni)
		}
		if n, ok := w.Plugin.(framework.ScoreNormalizer); ok {
			n.NormalizeScore(state, pi, raw)
		}
		for i := range raw {
			total[i] += raw[i] * w.Weight
		}
	}
	// The best node; ties broken uniformly at random (reservoir).
	best, ties := 0, 1
	for i := 1; i < len(total); i++ {
		switch {
		case total[i] > total[best]:
			best, ties = i, 1
		case total[i] == total[best]:
			ties++
			if s.cfg.Rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return feasible[best].Node.Name, d, state
}

func (s *Scheduler) filter(ctx context.Context, state *framework.CycleState, pi *framework.PodInfo, ni *framework.NodeInfo) (*framework.Status, string) {
	for _, f := range s.filters {
		if st := f.Filter(ctx, state, pi, ni); !st.IsSuccess() {
			return st, f.Name()
		}
	}
	return nil, ""
}

// fail records why a pod did not fit and parks it until the cluster
// changes.
func (s *Scheduler) fail(ctx context.Context, qp *queue.QueuedPod, cycle int64, msg string, rejectedBy map[string]bool) {
	pod := qp.Pod
	s.cfg.Log.Debug("pod unschedulable", "pod", pod.Namespace+"/"+pod.Name, "reason", msg)
	qp.RejectedBy = rejectedBy
	s.queue.Unschedulable(qp, cycle)
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	s.setCondition(ctx, pod, corev1.PodReasonUnschedulable, msg)
}

// setCondition sets PodScheduled=False with reason and message, unless it
// already says so.
func (s *Scheduler) setCondition(ctx context.Context, pod *corev1.Pod, reason, msg string) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == reason && c.Message == msg {
			return
		}
	}
	p := pod.DeepCopy()
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: reason, Message: msg,
		LastTransitionTime: metav1.NewTime(s.cfg.Clock.Now())}
	replaced := false
	for i, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			if c.Status == corev1.ConditionFalse {
				cond.LastTransitionTime = c.LastTransitionTime
			}
			p.Status.Conditions[i] = cond
			replaced = true
		}
	}
	if !replaced {
		p.Status.Conditions = append(p.Status.Conditions, cond)
	}
	if _, err := s.cfg.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		s.cfg.Log.Warn("set pod condition", "pod", p.Namespace+"/"+p.Name, "err", err)
	}
}

func (s *Scheduler) bindWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.binds:
			s.bind(ctx, j)
		}
	}
}

// unreserve undoes every Reserve of a pod whose binding did not happen.
func (s *Scheduler) unreserve(ctx context.Context, j bindJob) {
	for i := len(s.reserves) - 1; i >= 0; i-- {
		s.reserves[i].Unreserve(ctx, j.state, j.pi, j.node)
	}
}

func (s *Scheduler) bind(ctx context.Context, j bindJob) {
	pod := j.qp.Pod
	// PreBind may wait minutes (volumes being provisioned): it runs here,
	// in one of the bind workers, not in the scheduling loop.
	for _, p := range s.preBinds {
		if st := p.PreBind(ctx, j.state, j.pi, j.node); !st.IsSuccess() {
			s.unreserve(ctx, j)
			s.cache.Forget(pod.UID)
			if ctx.Err() != nil {
				s.queue.Done(pod.UID)
				return
			}
			msg := strings.Join(st.Reasons, ", ")
			s.cfg.Log.Warn("prebind pod", "pod", pod.Namespace+"/"+pod.Name, "node", j.node, "plugin", p.Name(), "err", msg)
			s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "running PreBind plugin %q: %s", p.Name(), msg)
			s.queue.Retry(j.qp)
			return
		}
	}
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: j.node},
	}
	err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	if err != nil {
		s.unreserve(ctx, j)
		s.cache.Forget(pod.UID)
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			s.queue.Done(pod.UID)
			return
		}
		s.cfg.Log.Warn("bind pod", "pod", pod.Namespace+"/"+pod.Name, "node", j.node, "err", err)
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		s.queue.Retry(j.qp)
		return
	}
	s.queue.Done(pod.UID)
	s.scheduled.Add(1)
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, j.node)
}

// Scheduled reports how many pods this scheduler has bound.
func (s *Scheduler) Scheduled() int64 { return s.scheduled.Load() }
